import { describe, expect, it } from 'vitest';
import { formatBytes, formatDuration, formatNumber, jobDuration, relativeTime } from './format';

describe('format', () => {
	it('durations', () => {
		expect(formatDuration(5)).toBe('5s');
		expect(formatDuration(65)).toBe('1m 05s');
		expect(formatDuration(3600 * 2 + 60 * 3)).toBe('2h 03m');
		expect(formatDuration(null)).toBe('—');
	});

	it('job duration runs until completion or now', () => {
		const job = {
			created_at: '2026-01-01T00:00:00Z',
			started_at: '2026-01-01T00:00:10Z',
			completed_at: null
		};
		expect(jobDuration(job, Date.parse('2026-01-01T00:01:10Z'))).toBe(60);
		expect(jobDuration({ ...job, completed_at: '2026-01-01T00:00:40Z' })).toBe(30);
		expect(jobDuration({ ...job, started_at: null })).toBeNull();
	});

	it('numbers and sizes', () => {
		expect(formatNumber(0.123456)).toBe('0.1235');
		expect(formatNumber(2e-5)).toBe('2.00e-5');
		expect(formatNumber(1200)).toBe((1200).toLocaleString());
		expect(formatBytes(1536)).toBe('1.5 KB');
		expect(relativeTime('2026-01-01T00:00:00Z', Date.parse('2026-01-01T00:10:00Z'))).toBe('10 minutes ago');
	});
});
