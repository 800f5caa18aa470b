import { describe, expect, it } from 'vitest';
import { statusTone } from './badges';

describe('statusTone', () => {
	it('gives each worker status its own tone', () => {
		const tones = ['idle', 'busy', 'offline', 'revoked'].map(statusTone);
		expect(tones).toEqual(['ok', 'info', 'warn', 'muted']);
		expect(new Set(tones).size).toBe(4);
	});

	it('keeps the job and model tones, and mutes what it does not know', () => {
		expect(statusTone('running')).toBe('info');
		expect(statusTone('failed')).toBe('danger');
		expect(statusTone('deployed')).toBe('ok');
		expect(statusTone('something-new')).toBe('muted');
	});
});
