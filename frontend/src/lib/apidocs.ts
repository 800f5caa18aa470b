// The API page: each service's interactive docs behind the gateway, the OpenAI-compatible base
// URL with a short example, and the `ftd` command line's first lines.
import { KEY_ENV } from './snippets';

export interface ServiceDocs {
	/** The gateway's name for it: /docs/<service> (Swagger UI) and /openapi/<service>.json. */
	service: 'job-api' | 'data-service' | 'registry-service' | 'model-server' | 'webhook-service';
	title: string;
	about: string;
}

/** Every service the gateway serves docs for (deploy/gateway/nginx.conf.template). */
export const SERVICE_DOCS: readonly ServiceDocs[] = [
	{ service: 'job-api', title: 'Jobs', about: 'Fine-tuning jobs, their live events, workers, namespaces.' },
	{
		service: 'data-service',
		title: 'Datasets',
		about: 'Uploads, validation reports and previews of training data.'
	},
	{
		service: 'registry-service',
		title: 'Models',
		about: 'The model registry: versions, metrics, deploy and undeploy.'
	},
	{
		service: 'model-server',
		title: 'Serving',
		about: 'The OpenAI-compatible /v1 API of deployed models, and API keys.'
	},
	{
		service: 'webhook-service',
		title: 'Webhooks',
		about: 'Webhooks, their signing secrets and delivery logs.'
	}
];

export const docsPath = (s: ServiceDocs['service']) => `/docs/${s}`;
export const openApiPath = (s: ServiceDocs['service']) => `/openapi/${s}.json`;

/** Five lines of Python with the `openai` package: the models the key can call. */
export function openAiExample(baseUrl: string): string {
	return [
		'import os',
		'from openai import OpenAI',
		'',
		`client = OpenAI(base_url=${JSON.stringify(baseUrl)}, api_key=os.environ[${JSON.stringify(KEY_ENV)}])`,
		'for model in client.models.list():',
		'    print(model.id)'
	].join('\n');
}

/** Installing the `ftd` command (libs/ftd of the repository) and signing it in to this server. */
export function cliLines(origin: string): string {
	return [
		'# from a clone of the repository',
		'pip install ./libs/ftd',
		`ftd --base-url ${origin} login      # paste your token (hidden)`,
		`ftd --base-url ${origin} jobs list`
	].join('\n');
}
