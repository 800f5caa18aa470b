// Names the UI uses for the generated OpenAPI types (src/lib/api/generated/*.ts).
import type { components } from './generated/job-api';

type JobApi = components['schemas'];

export type FinetuneJob = JobApi['FinetuneJobResponse'];
export type FinetuneJobCreate = JobApi['FinetuneJobCreate'];
export type JobType = JobApi['JobType'];
export type JobStatus = JobApi['JobStatus'];
export type JobPhase = JobApi['JobPhase'];
export type GPUProvider = JobApi['GPUProvider'];
export type FailureClass = JobApi['FailureClass'];
export type BaseModelInfo = JobApi['BaseModelInfo'];
export type BaseModelsByType = JobApi['BaseModelsResponse'];
export type JobEvent = JobApi['JobEventResponse'];
export type ErrorBody = JobApi['ErrorBody'];
export type WorkerPool = JobApi['WorkerPool'];
export type WaitingNotice = JobApi['WaitingNotice'];
export type Worker = JobApi['WorkerResponse'];
export type WorkerStatus = Worker['status'];
export type WorkerCreate = JobApi['WorkerCreate'];
export type EnrolledWorker = JobApi['EnrolledWorker'];
export type Namespace = JobApi['NamespaceResponse'];

export const JOB_TYPES: readonly JobType[] = ['embedding', 'classifier', 'llm_lora'];
export const JOB_STATUSES: readonly JobStatus[] = ['pending', 'running', 'completed', 'failed', 'cancelled'];
export const GPU_PROVIDERS: readonly GPUProvider[] = ['local', 'colab', 'kaggle', 'runpod'];
export const TERMINAL: ReadonlySet<JobStatus> = new Set(['completed', 'failed', 'cancelled']);

export const JOB_TYPE_LABEL: Record<JobType, string> = {
	embedding: 'Sentence embedding',
	classifier: 'Text classifier',
	llm_lora: 'LLM LoRA'
};

export const PROVIDER_LABEL: Record<GPUProvider, string> = {
	local: 'Local worker',
	colab: 'Google Colab',
	kaggle: 'Kaggle',
	runpod: 'RunPod'
};

/** The `data` of a `progress` history row (job-api's progress_row: the JobProgress payload). */
export interface ProgressData {
	worker_id?: string;
	progress?: number;
	phase?: JobPhase;
	step?: number;
	total_steps?: number;
	epoch?: number;
	loss?: number;
	metrics?: Record<string, number>;
	log_lines?: string[];
	eta_seconds?: number;
	logs_url?: string;
}

/** The `data` of a `status` history row (job-api's status_row). */
export interface StatusData {
	from_status: JobStatus | null;
	to_status: JobStatus;
	attempt: number;
	reason: string | null;
	phase: JobPhase;
	error: string | null;
	failure_class: FailureClass | null;
}

/** `{"data": [...], next_cursor, limit}`, the paged list shape every service answers. */
export interface Page<T> {
	data: T[];
	next_cursor: string | null;
	limit: number;
}
