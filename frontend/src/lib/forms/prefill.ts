// The create form's query parameters ("Train again with…" links from a job page): job type, base
// model, the same data (an uploaded dataset's id or an https URL) and hyperparameters.
import { JOB_TYPES, type JobType } from '$lib/api/types';
import { hyperparameterFields } from './hyperparameters';

export interface Prefill {
	jobType: JobType | null;
	baseModel: string | null;
	datasetId: string | null;
	dataUrl: string | null;
	/** Hyperparameters of the job type, as the form's text fields hold them. */
	hyper: Record<string, string>;
	/** The job this one repeats. */
	from: string | null;
}

const UUIDISH = /^[0-9A-Za-z][0-9A-Za-z_-]{0,99}$/;

/** Reads the parameters; anything unknown, malformed or out of the contract's range is left out. */
export function parsePrefill(params: URLSearchParams): Prefill {
	const type = params.get('type');
	const jobType = JOB_TYPES.includes(type as JobType) ? (type as JobType) : null;
	const base = params.get('base_model')?.trim() ?? '';
	const dataset = params.get('dataset')?.trim() ?? '';
	const url = params.get('data_url')?.trim() ?? '';
	const from = params.get('from')?.trim() ?? '';
	const hyper: Record<string, string> = {};
	if (jobType) {
		for (const f of hyperparameterFields(jobType)) {
			const raw = params.get(f.name);
			if (raw === null || raw.trim() === '') continue;
			const v = Number(raw);
			if (!Number.isFinite(v)) continue;
			if (f.kind === 'integer' && !Number.isInteger(v)) continue;
			if (f.minimum !== null && v < f.minimum) continue;
			if (f.maximum !== null && v > f.maximum) continue;
			if (f.exclusiveMinimum !== null && v <= f.exclusiveMinimum) continue;
			hyper[f.name] = String(v);
		}
	}
	return {
		jobType,
		baseModel: base && base.length <= 200 ? base : null,
		datasetId: UUIDISH.test(dataset) ? dataset : null,
		dataUrl: /^https:\/\/\S+$/.test(url) ? url : null,
		hyper,
		from: UUIDISH.test(from) ? from : null
	};
}
