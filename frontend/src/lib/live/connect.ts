// Opens a job stream with the session's token in the Authorization header and hands parsed
// snapshots and history rows to the page. A 401 signs the user out.
import { api } from '$lib/api';
import { openStream, type StreamHandle, type StreamState } from '$lib/api/sse';
import type { FinetuneJob, JobEvent } from '$lib/api/types';
import { session } from '$lib/auth/session.svelte';
import { parseStreamEvent } from './jobs';

export interface JobStreamHandlers {
	onSnapshot?: (jobs: FinetuneJob[]) => void;
	onEvent: (event: JobEvent) => void;
	onState: (state: StreamState) => void;
}

export function connectJobStream(
	path: string,
	handlers: JobStreamHandlers,
	lastEventId: string | null = null
): StreamHandle {
	return openStream({
		url: `${api.baseUrl}${path}`,
		lastEventId,
		headers: () => api.authHeaders(),
		onState: (state) => handlers.onState(state),
		onFatal: (error) => {
			if (error.status === 401) session.signOut(error.message);
		},
		onEvent: ({ event, data }) => {
			const parsed = parseStreamEvent(event, data);
			if (!parsed) return;
			if (parsed.kind === 'snapshot') handlers.onSnapshot?.(parsed.jobs);
			else handlers.onEvent(parsed.event);
		}
	});
}

/** Runs `fn` every `ms` while `active()` is true; returns a stop function. */
export function every(ms: number, active: () => boolean, fn: () => void): () => void {
	const timer = setInterval(() => {
		if (active()) fn();
	}, ms);
	return () => clearInterval(timer);
}
