import { describe, expect, it } from 'vitest';
import type { JobEvent } from '$lib/api/types';
import { addProgress, appendLogLines, logLinesFrom, reduceSeries, seriesFrom, type Series } from './series';

let id = 0;
const progress = (attempt: number, data: Record<string, unknown>): JobEvent => ({
	id: ++id,
	job_id: 'j',
	attempt,
	kind: 'progress',
	data,
	created_at: '2026-01-01T00:00:00Z'
});

describe('seriesFrom', () => {
	it("plots the latest attempt's loss and metrics by step", () => {
		const events = [
			progress(1, { step: 1, loss: 9 }),
			progress(2, { step: 1, loss: 2.0, metrics: { accuracy: 0.5 } }),
			progress(2, { step: 2, loss: 1.5, metrics: { accuracy: 0.6, train_loss: 1.5 } }),
			progress(2, { step: 2, loss: 1.4 }),
			progress(2, { step: 3, metrics: { loss: 1.2 } })
		];
		const s = seriesFrom(events);
		expect(s.attempt).toBe(2);
		expect(s.xLabel).toBe('step');
		expect(s.loss).toEqual({ x: [1, 2, 3], y: [2.0, 1.4, 1.2] });
		expect(s.metrics).toEqual({ accuracy: { x: [1, 2], y: [0.5, 0.6] } });
	});

	it('falls back to the report index without steps', () => {
		const s = seriesFrom([progress(1, { loss: 3 }), progress(1, { loss: 2 })]);
		expect(s.xLabel).toBe('report');
		expect(s.loss.x).toEqual([0, 1]);
	});

	it('drops non-finite values', () => {
		const s = seriesFrom([progress(1, { step: 1, loss: null, metrics: { a: 'x' } })]);
		expect(s.loss.x).toEqual([]);
		expect(s.metrics).toEqual({});
		addProgress(s, { step: 2, loss: 1 }, 0);
		expect(s.loss.y).toEqual([1]);
	});
});

describe('reduceSeries', () => {
	const big = (n: number): Series => ({
		x: Array.from({ length: n }, (_, i) => i),
		y: Array.from({ length: n }, (_, i) => Math.sin(i / 50))
	});

	it('keeps small series as they are', () => {
		const s = big(10);
		expect(reduceSeries(s, 100)).toEqual(s);
	});

	it('reduces to the budget, keeping the ends, order and a spike', () => {
		const s = big(10_000);
		s.y[5_123] = 50;
		const r = reduceSeries(s, 300);
		expect(r.x.length).toBe(300);
		expect(r.x[0]).toBe(0);
		expect(r.x[299]).toBe(9_999);
		expect(r.x.every((x, i) => i === 0 || x > (r.x[i - 1] as number))).toBe(true);
		expect(r.y).toContain(50);
	});
});

describe('log lines', () => {
	it('collects worker lines and status changes, capped', () => {
		const events: JobEvent[] = [
			{
				id: 1,
				job_id: 'j',
				attempt: 0,
				kind: 'status',
				data: { from_status: null, to_status: 'pending', reason: 'created' },
				created_at: ''
			},
			progress(1, { log_lines: ['epoch 1', 'epoch 2'] })
		];
		const lines = logLinesFrom(events);
		expect(lines.map((l) => l.text)).toEqual(['— status new → pending (created)', 'epoch 1', 'epoch 2']);
		appendLogLines(lines, progress(1, { log_lines: ['a', 'b', 'c'] }), 4);
		expect(lines.map((l) => l.text)).toEqual(['epoch 2', 'a', 'b', 'c']);
	});
});
