// Turns a job's progress history into chart series, and keeps them small enough to draw: a long
// run reports thousands of steps, a chart a few hundred pixels wide needs a few hundred points.
import type { JobEvent, ProgressData } from '$lib/api/types';

export interface Series {
	/** x: the training step (or, when a worker reports none, the report's index). */
	x: number[];
	y: number[];
}

export interface TrainingSeries {
	attempt: number;
	xLabel: 'step' | 'report';
	loss: Series;
	metrics: Record<string, Series>;
}

const empty = (): Series => ({ x: [], y: [] });

/** Appends (x, y), replacing the last point when x did not move forward (a repeated report). */
export function pushPoint(series: Series, x: number, y: number): void {
	const n = series.x.length;
	if (n > 0 && x <= (series.x[n - 1] as number)) {
		if (x === series.x[n - 1]) series.y[n - 1] = y;
		return;
	}
	series.x.push(x);
	series.y.push(y);
}

/** Builds series from progress events (kind `progress`) of the latest attempt. */
export function seriesFrom(events: readonly JobEvent[]): TrainingSeries {
	let attempt = 0;
	for (const e of events) if (e.kind === 'progress' && e.attempt > attempt) attempt = e.attempt;
	const out: TrainingSeries = { attempt, xLabel: 'step', loss: empty(), metrics: {} };
	let index = 0;
	let sawStep = true;
	for (const e of events) {
		if (e.kind !== 'progress' || e.attempt !== attempt) continue;
		addProgress(out, e.data as ProgressData, index++);
		sawStep &&= typeof (e.data as ProgressData).step === 'number';
	}
	if (!sawStep) out.xLabel = 'report';
	return out;
}

/** Adds one progress report (live or from history) to the series. */
export function addProgress(out: TrainingSeries, data: ProgressData, index: number): void {
	const x = typeof data.step === 'number' ? data.step : index;
	if (typeof data.loss === 'number' && Number.isFinite(data.loss)) pushPoint(out.loss, x, data.loss);
	for (const [name, value] of Object.entries(data.metrics ?? {})) {
		if (typeof value !== 'number' || !Number.isFinite(value)) continue;
		if (name === 'loss' || name === 'train_loss') {
			if (typeof data.loss !== 'number') pushPoint(out.loss, x, value);
			continue;
		}
		pushPoint((out.metrics[name] ??= empty()), x, value);
	}
}

/**
 * Largest-Triangle-Three-Buckets downsampling (Steinarsson 2013): keeps the first and last points
 * and, per bucket, the point that best preserves the curve's shape, so spikes survive.
 */
export function reduceSeries(series: Series, maxPoints: number): Series {
	const n = series.x.length;
	if (maxPoints >= n || maxPoints < 3) return { x: series.x.slice(), y: series.y.slice() };
	const { x, y } = series;
	const out: Series = { x: [x[0] as number], y: [y[0] as number] };
	const bucket = (n - 2) / (maxPoints - 2);
	let a = 0;
	for (let i = 0; i < maxPoints - 2; i++) {
		const start = Math.floor(i * bucket) + 1;
		const end = Math.min(Math.floor((i + 1) * bucket) + 1, n - 1);
		const nextStart = end;
		const nextEnd = Math.min(Math.floor((i + 2) * bucket) + 1, n);
		let avgX = 0;
		let avgY = 0;
		for (let j = nextStart; j < nextEnd; j++) {
			avgX += x[j] as number;
			avgY += y[j] as number;
		}
		const count = Math.max(nextEnd - nextStart, 1);
		avgX /= count;
		avgY /= count;
		let best = start;
		let bestArea = -1;
		const ax = x[a] as number;
		const ay = y[a] as number;
		for (let j = start; j < end; j++) {
			const area = Math.abs((ax - avgX) * ((y[j] as number) - ay) - (ax - (x[j] as number)) * (avgY - ay));
			if (area > bestArea) {
				bestArea = area;
				best = j;
			}
		}
		out.x.push(x[best] as number);
		out.y.push(y[best] as number);
		a = best;
	}
	out.x.push(x[n - 1] as number);
	out.y.push(y[n - 1] as number);
	return out;
}

/** Log lines from progress events, oldest first, the newest `max` kept. */
export function logLinesFrom(events: readonly JobEvent[], max = 5000): LogLine[] {
	const lines: LogLine[] = [];
	for (const e of events) appendLogLines(lines, e, max);
	return lines;
}

export interface LogLine {
	key: string;
	attempt: number;
	text: string;
	at: string;
}

export function appendLogLines(lines: LogLine[], e: JobEvent, max = 5000): void {
	if (e.kind === 'progress') {
		const data = e.data as ProgressData;
		(data.log_lines ?? []).forEach((text, i) =>
			lines.push({ key: `${e.id}:${i}`, attempt: e.attempt, text, at: e.created_at })
		);
	} else if (e.kind === 'status') {
		const d = e.data as {
			from_status?: string | null;
			to_status?: string;
			reason?: string | null;
			error?: string | null;
		};
		const reason = d.reason ? ` (${d.reason})` : '';
		const error = d.error ? `: ${d.error}` : '';
		lines.push({
			key: `${e.id}:s`,
			attempt: e.attempt,
			text: `— status ${d.from_status ?? 'new'} → ${d.to_status}${reason}${error}`,
			at: e.created_at
		});
	}
	if (lines.length > max) lines.splice(0, lines.length - max);
}

/** Two series on one x axis (the union of their x values); a missing y is null (a gap). */
export function alignSeries(a: Series, b: Series): [number[], (number | null)[], (number | null)[]] {
	const xs = [...new Set([...a.x, ...b.x])].sort((p, q) => p - q);
	const at = (s: Series) => {
		const m = new Map<number, number>();
		s.x.forEach((x, i) => m.set(x, s.y[i] as number));
		return xs.map((x) => m.get(x) ?? null);
	};
	return [xs, at(a), at(b)];
}
