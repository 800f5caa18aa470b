{{/* Names, labels and the environment the services share. */}}

{{- define "ftd.fullname" -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}

{{- define "ftd.labels" -}}
app.kubernetes.io/part-of: finetune-dispatcher
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
{{ include "ftd.selectorLabels" . }}
{{- end -}}

{{- define "ftd.selectorLabels" -}}
app.kubernetes.io/name: {{ .component }}
app.kubernetes.io/component: {{ .component }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- end -}}

{{- define "ftd.image" -}}
{{- printf "%s/%s:%s" .root.Values.image.registry .name .root.Values.image.tag -}}
{{- end -}}

{{- define "ftd.rabbitmqName" -}}
{{- default (printf "%s-rabbitmq" (include "ftd.fullname" .)) .Values.rabbitmq.name -}}
{{- end -}}

{{- define "ftd.rabbitmqAdminSecret" -}}
{{- default (printf "%s-default-user" (include "ftd.rabbitmqName" .)) .Values.rabbitmq.adminSecret -}}
{{- end -}}

{{- define "ftd.postgresName" -}}
{{- default (printf "%s-postgres" (include "ftd.fullname" .)) .Values.postgresql.name -}}
{{- end -}}

{{- define "ftd.postgresHost" -}}
{{- if .Values.postgresql.create -}}
{{- printf "%s-rw" (include "ftd.postgresName" .) -}}
{{- else -}}
{{- required "postgresql.host is required when postgresql.create is false" .Values.postgresql.host -}}
{{- end -}}
{{- end -}}

{{- define "ftd.postgresSuperuserSecret" -}}
{{- default (printf "%s-superuser" (include "ftd.postgresName" .)) .Values.postgresql.superuserSecret -}}
{{- end -}}

{{/* The vhost as it goes into a URL's path (/finetune -> %2Ffinetune). */}}
{{- define "ftd.vhostPath" -}}
{{- .Values.rabbitmq.vhost | replace "/" "%2F" -}}
{{- end -}}

{{- define "ftd.amqpAddress" -}}
{{- printf "%s:5672/%s" (include "ftd.rabbitmqName" .) (include "ftd.vhostPath" .) -}}
{{- end -}}

{{- define "ftd.secretEnv" -}}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
      name: {{ .secret }}
      key: {{ .key }}
{{- end -}}

{{/*
The environment of one Python service (dict: root, name). Database and broker URLs are put
together from Secret keys with Kubernetes' $(NAME) expansion, so no template holds a password.
*/}}
{{- define "ftd.serviceEnv" -}}
{{- $root := .root -}}
{{- $secret := $root.Values.existingSecret -}}
{{- $prefix := .name | replace "-" "_" | upper -}}
{{- $role := .name | replace "-" "_" -}}
- name: FTD_ENV
  value: {{ $root.Values.environment | quote }}
- name: FTD_JSON_LOGS
  value: {{ $root.Values.jsonLogs | quote }}
- name: FTD_LOG_LEVEL
  value: {{ $root.Values.logLevel | quote }}
- name: FTD_DATABASE_NAME
  value: {{ $root.Values.postgresql.database | quote }}
{{ include "ftd.secretEnv" (dict "name" "FTD_JWT_SECRET" "secret" $secret "key" "FTD_JWT_SECRET") }}
{{ include "ftd.secretEnv" (dict "name" (printf "%s_DB_PASSWORD" $prefix) "secret" $secret "key" (printf "%s_DB_PASSWORD" $prefix)) }}
- name: {{ printf "%s_DATABASE_URL" $prefix }}
  value: {{ printf "postgresql://%s:$(%s_DB_PASSWORD)@%s:5432/%s" $role $prefix (include "ftd.postgresHost" $root) $root.Values.postgresql.database | quote }}
{{ include "ftd.secretEnv" (dict "name" (printf "FTD_BROKER_%s_PASSWORD" $prefix) "secret" $secret "key" (printf "FTD_BROKER_%s_PASSWORD" $prefix)) }}
- name: FTD_AMQP_URL
  value: {{ printf "amqp://%s:$(FTD_BROKER_%s_PASSWORD)@%s" .name $prefix (include "ftd.amqpAddress" $root) | quote }}
{{- if eq .name "job-api" }}
{{ include "ftd.secretEnv" (dict "name" "FINETUNE_WORKER_KEY" "secret" $secret "key" "FINETUNE_WORKER_KEY") }}
{{ include "ftd.secretEnv" (dict "name" "FTD_DATA_TICKET_SECRET" "secret" $secret "key" "FTD_DATA_TICKET_SECRET") }}
{{ include "ftd.secretEnv" (dict "name" "FTD_SECRETS_KEY" "secret" $secret "key" "FTD_SECRETS_KEY") }}
- name: FTD_PUBLIC_BASE_URL
  value: {{ $root.Values.publicBaseUrl | quote }}
{{ include "ftd.secretEnv" (dict "name" "FTD_BROKER_ADMIN_USER" "secret" (include "ftd.rabbitmqAdminSecret" $root) "key" "username") }}
{{ include "ftd.secretEnv" (dict "name" "FTD_BROKER_ADMIN_PASSWORD" "secret" (include "ftd.rabbitmqAdminSecret" $root) "key" "password") }}
- name: FTD_BROKER_MANAGEMENT_URL
  value: {{ printf "http://$(FTD_BROKER_ADMIN_USER):$(FTD_BROKER_ADMIN_PASSWORD)@%s:15672" (include "ftd.rabbitmqName" $root) | quote }}
- name: FTD_WORKER_AMQP_URL_PUBLIC
  value: {{ printf "amqp://%s" (include "ftd.amqpAddress" $root) | quote }}
- name: JOB_API_MAX_BODY_BYTES
  value: {{ $root.Values.gateway.jobApiMaxBodyBytes | quote }}
{{- end }}
{{- if eq .name "data-service" }}
{{ include "ftd.secretEnv" (dict "name" "FTD_DATA_TICKET_SECRET" "secret" $secret "key" "FTD_DATA_TICKET_SECRET") }}
- name: DATA_SERVICE_STORAGE_BACKEND
  value: "s3"
- name: DATA_SERVICE_S3_ENDPOINT
  value: {{ $root.Values.dataService.s3.endpoint | quote }}
- name: DATA_SERVICE_S3_PUBLIC_ENDPOINT
  value: {{ $root.Values.dataService.s3.publicEndpoint | quote }}
- name: DATA_SERVICE_S3_BUCKET
  value: {{ $root.Values.dataService.s3.bucket | quote }}
- name: DATA_SERVICE_S3_SECURE
  value: {{ $root.Values.dataService.s3.secure | quote }}
- name: DATA_SERVICE_S3_REGION
  value: {{ $root.Values.dataService.s3.region | quote }}
{{ include "ftd.secretEnv" (dict "name" "DATA_SERVICE_S3_ACCESS_KEY" "secret" $secret "key" "DATA_SERVICE_S3_ACCESS_KEY") }}
{{ include "ftd.secretEnv" (dict "name" "DATA_SERVICE_S3_SECRET_KEY" "secret" $secret "key" "DATA_SERVICE_S3_SECRET_KEY") }}
- name: DATA_SERVICE_MAX_UPLOAD_BYTES
  value: {{ $root.Values.dataService.maxUploadBytes | quote }}
{{- end }}
{{- if eq .name "model-server" }}
- name: FTD_SERVE_LORA_BACKEND
  value: {{ $root.Values.modelServer.loraBackend | quote }}
{{- if $root.Values.modelServer.vllmUrl }}
- name: FTD_SERVE_VLLM_URL
  value: {{ $root.Values.modelServer.vllmUrl | quote }}
{{- end }}
{{- end }}
{{- if eq .name "webhook-service" }}
{{ include "ftd.secretEnv" (dict "name" "WEBHOOK_SERVICE_SECRETS_KEY" "secret" $secret "key" "WEBHOOK_SERVICE_SECRETS_KEY") }}
{{- end }}
{{- if eq .name "registry-service" }}
{{- if $root.Values.registryService.loraBaseUrl }}
- name: REGISTRY_SERVICE_LORA_BASE_URL
  value: {{ $root.Values.registryService.loraBaseUrl | quote }}
{{- end }}
{{- if $root.Values.registryService.serveBaseUrl }}
- name: REGISTRY_SERVICE_SERVE_BASE_URL
  value: {{ $root.Values.registryService.serveBaseUrl | quote }}
{{- end }}
{{- end }}
{{- range $key, $value := .service.extraEnv }}
- name: {{ $key }}
  value: {{ $value | quote }}
{{- end }}
{{- end -}}
