// The colour a status badge takes, for every status the UI shows: jobs, models and workers.

export type Tone = 'ok' | 'info' | 'warn' | 'danger' | 'muted';

const TONE: Record<string, Tone> = {
	// jobs
	pending: 'warn',
	running: 'info',
	completed: 'ok',
	failed: 'danger',
	cancelled: 'muted',
	// models
	registered: 'muted',
	deployed: 'ok',
	retired: 'muted',
	// workers: online and free, online and training, not heard from lately, credential revoked
	idle: 'ok',
	busy: 'info',
	offline: 'warn',
	revoked: 'muted'
};

/** The badge tone of a status; an unknown one is muted rather than alarming. */
export function statusTone(status: string): Tone {
	return TONE[status] ?? 'muted';
}
