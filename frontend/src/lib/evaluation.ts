// A finished run at a glance: the task's held-out metrics, the base model's value beside the tuned
// one, the timing numbers apart from them, and a verdict when the tuned model is not better.
//
// Where the numbers come from: the worker evaluates the base model on the held-out split before
// training and the tuned model after (gpu-worker's trainers). The registry keeps both
// (`metrics`, `baseline_metrics` of the model); the job keeps the tuned ones (`metrics`). For a
// trainer that evaluates through transformers' Trainer (classifier, LoRA) the two evaluations
// also arrive as progress reports (`eval_*` metrics, the first at step 0), so the page can pair
// them before the registry answers.
import type { JobEvent, JobType, ProgressData } from '$lib/api/types';
import { hyperparameterFields } from '$lib/forms/hyperparameters';

export interface MetricPair {
	name: string;
	label: string;
	base: number | null;
	tuned: number | null;
	/** Which way is better. */
	better: 'higher' | 'lower';
	/** True when the tuned value beats the base by more than noise; null when either is missing. */
	improved: boolean | null;
}

interface MetricSpec {
	name: string;
	label: string;
	better: 'higher' | 'lower';
}

/** The task's held-out metrics, headline first. */
export const TASK_METRICS: Record<JobType, MetricSpec[]> = {
	embedding: [
		{ name: 'retrieval_accuracy@1', label: 'Retrieval accuracy@1', better: 'higher' },
		{ name: 'retrieval_accuracy@5', label: 'Retrieval accuracy@5', better: 'higher' },
		{ name: 'retrieval_mrr@10', label: 'Retrieval MRR@10', better: 'higher' },
		{ name: 'retrieval_ndcg@10', label: 'Retrieval nDCG@10', better: 'higher' },
		{ name: 'spearman_cosine', label: 'Spearman (cosine)', better: 'higher' },
		{ name: 'pearson_cosine', label: 'Pearson (cosine)', better: 'higher' }
	],
	classifier: [
		{ name: 'accuracy', label: 'Accuracy', better: 'higher' },
		{ name: 'f1_macro', label: 'F1 (macro)', better: 'higher' },
		{ name: 'eval_loss', label: 'Eval loss', better: 'lower' }
	],
	llm_lora: [
		{ name: 'eval_loss', label: 'Eval loss', better: 'lower' },
		{ name: 'perplexity', label: 'Perplexity', better: 'lower' }
	]
};

/** Trainer evaluation names (progress reports) under the names the worker publishes. */
const EVAL_ALIASES: Record<string, string> = {
	eval_accuracy: 'accuracy',
	eval_f1_macro: 'f1_macro',
	eval_loss: 'eval_loss'
};

/** A gain smaller than this is noise on a small held-out split (absolute for scores in 0..1,
 * relative for losses and perplexity). */
export const NOISE = 0.005;

/** Timing numbers: a details table, never a chart or a headline. */
export function isTimingMetric(name: string): boolean {
	return (
		/(^|_)runtime$/.test(name) ||
		/_per_second$/.test(name) ||
		/(^|_)preparation_time$/.test(name) ||
		/(^|_)(flos|total_flos)$/.test(name)
	);
}

function improvedOf(spec: MetricSpec, base: number | null, tuned: number | null): boolean | null {
	if (base === null || tuned === null) return null;
	const gain = spec.better === 'higher' ? tuned - base : base - tuned;
	const tolerance = spec.better === 'higher' ? NOISE : NOISE * Math.abs(base);
	return gain > tolerance;
}

const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);

/** Adds perplexity = exp(eval_loss) where a loss is known and no perplexity is. */
function withPerplexity(m: Record<string, number>): Record<string, number> {
	const loss = num(m.eval_loss);
	return loss !== null && num(m.perplexity) === null && loss < 50 ? { ...m, perplexity: Math.exp(loss) } : m;
}

/**
 * Base and tuned held-out values of the task's metrics, those with at least one value. `tuned` and
 * `base` are the registry's (or the job's) numbers; `fromEvents` fills what they lack.
 */
export function pairMetrics(
	jobType: JobType,
	tuned: Record<string, number>,
	base: Record<string, number>,
	fromEvents: { base: Record<string, number>; tuned: Record<string, number> } = { base: {}, tuned: {} }
): MetricPair[] {
	const t = withPerplexity({ ...fromEvents.tuned, ...tuned });
	const b = withPerplexity({ ...fromEvents.base, ...base });
	return TASK_METRICS[jobType]
		.map((spec) => {
			const bv = num(b[spec.name]);
			const tv = num(t[spec.name]);
			return { ...spec, base: bv, tuned: tv, improved: improvedOf(spec, bv, tv) };
		})
		.filter((p) => p.base !== null || p.tuned !== null);
}

/**
 * The held-out evaluations in a run's progress reports (latest attempt): the report at step 0 is
 * the base model's, the last one after it the tuned model's.
 */
export function evaluationsFromEvents(events: readonly JobEvent[]): {
	base: Record<string, number>;
	tuned: Record<string, number>;
} {
	let attempt = 0;
	for (const e of events) if (e.kind === 'progress' && e.attempt > attempt) attempt = e.attempt;
	const base: Record<string, number> = {};
	const tuned: Record<string, number> = {};
	for (const e of events) {
		if (e.kind !== 'progress' || e.attempt !== attempt) continue;
		const d = e.data as ProgressData;
		const evals = Object.entries(d.metrics ?? {}).filter(([k, v]) => k in EVAL_ALIASES && num(v) !== null);
		if (!evals.length) continue;
		const target = (d.step ?? 0) === 0 ? base : tuned;
		for (const [k, v] of evals) target[EVAL_ALIASES[k] as string] = v;
	}
	return { base, tuned };
}

/** Numbers for the details table: timing and the rest that is neither a headline nor the loss. */
export function detailMetrics(jobType: JobType, metrics: Record<string, number>): [string, number][] {
	const headline = new Set(TASK_METRICS[jobType].map((s) => s.name));
	return Object.entries(metrics)
		.filter(([k, v]) => num(v) !== null && !headline.has(k) && !(k in EVAL_ALIASES))
		.sort(([a], [b]) => Number(isTimingMetric(b)) - Number(isTimingMetric(a)) || a.localeCompare(b));
}

/** Progress metrics worth a curve: not timing, not an evaluation (those are pairs, not curves). */
export function isCurveMetric(name: string): boolean {
	return !isTimingMetric(name) && !name.startsWith('eval_') && name !== 'loss' && name !== 'train_loss';
}

export type Cause = 'few_steps' | 'learning_rate_low' | 'learning_rate_high';

export interface Verdict {
	metric: MetricPair;
	cause: Cause;
	/** One sentence naming the likely cause. */
	reason: string;
	/** What to change for the next run (only the hyperparameters that change). */
	suggestion: { epochs?: number; learning_rate?: number };
}

export interface RunFacts {
	jobType: JobType;
	/** Optimizer steps the run took (job.total_steps, or the worker's global_step). */
	steps: number | null;
	hyperparameters: Record<string, unknown>;
	/** The first and last logged training loss (train_loss_first / train_loss_last). */
	trainLossFirst: number | null;
	trainLossLast: number | null;
}

/** Fewer optimizer steps than this rarely move a pretrained model on the held-out split. */
export const FEW_STEPS = 100;

/**
 * When the tuned model is not better than the base on the held-out split (its headline metric),
 * the likely cause and what to change; null when it is better or nothing was evaluated.
 */
export function underTrained(pairs: readonly MetricPair[], facts: RunFacts): Verdict | null {
	const metric = pairs.find((p) => p.improved !== null);
	if (!metric || metric.improved) return null;
	const fields = hyperparameterFields(facts.jobType);
	const field = (n: string) => fields.find((f) => f.name === n);
	const epochs = num(facts.hyperparameters.epochs) ?? field('epochs')?.default ?? 1;
	const lr = num(facts.hyperparameters.learning_rate) ?? field('learning_rate')?.default ?? 2e-5;
	const maxEpochs = field('epochs')?.maximum ?? 100;
	const maxLr = field('learning_rate')?.maximum ?? 0.01;
	const round = (x: number) => Number(x.toPrecision(2));

	if (facts.steps !== null && facts.steps < FEW_STEPS && epochs < maxEpochs) {
		const wanted = Math.ceil((epochs * FEW_STEPS) / Math.max(facts.steps, 1));
		const next = Math.min(maxEpochs, Math.max(epochs + 1, Math.min(wanted, epochs * 4)));
		return {
			metric,
			cause: 'few_steps',
			reason: `The run took only ${facts.steps} training steps (${epochs} epoch${epochs === 1 ? '' : 's'}): too few to move the model. Train longer, or on more data.`,
			suggestion: { epochs: next }
		};
	}
	const first = facts.trainLossFirst;
	const last = facts.trainLossLast;
	const fell = first !== null && last !== null && first > 0 ? (first - last) / first : null;
	if (fell !== null && fell > 0.5) {
		// The training loss fell a lot while the held-out metric did not: it fit the training rows.
		return {
			metric,
			cause: 'learning_rate_high',
			reason: `The training loss fell by ${Math.round(fell * 100)}% but the held-out ${metric.label.toLowerCase()} did not improve: the learning rate (${lr}) is likely too high, and the model fits the training rows only.`,
			suggestion: { learning_rate: round(lr / 2) }
		};
	}
	return {
		metric,
		cause: 'learning_rate_low',
		reason: `The training loss barely moved${fell !== null ? ` (${Math.round(fell * 100)}%)` : ''}: the learning rate (${lr}) is likely too low for this data.`,
		suggestion: { learning_rate: round(Math.min(maxLr, lr * 3)) }
	};
}

export interface RetrainFrom {
	job_type: JobType;
	base_model: string;
	dataset_id?: string | null;
	training_data_url: string;
	id: string;
	hyperparameters?: Record<string, unknown>;
}

/** The create form, prefilled: the same type, base model and data, the suggestion applied. */
export function retrainHref(job: RetrainFrom, suggestion: Verdict['suggestion']): string {
	const q = new URLSearchParams({ type: job.job_type, base_model: job.base_model });
	if (job.dataset_id) q.set('dataset', job.dataset_id);
	else if (/^https:\/\//.test(job.training_data_url)) q.set('data_url', job.training_data_url);
	for (const [k, v] of Object.entries(job.hyperparameters ?? {})) {
		if (typeof v === 'number' && Number.isFinite(v)) q.set(k, String(v));
	}
	for (const [k, v] of Object.entries(suggestion)) if (v !== undefined) q.set(k, String(v));
	q.set('from', job.id);
	return `/finetune/new?${q}`;
}
