// The app's API client, bound to the session's token. A 401 signs the user out with the reason.
import { session } from '$lib/auth/session.svelte';
import { ApiClient } from './client';

export const api = new ApiClient(
	'',
	() => session.token,
	(...args) => fetch(...args),
	(error) => session.signOut(error.message)
);

export * from './client';
export * from './types';
export * as finetune from './finetune';
export * as datasets from './datasets';
export * as models from './models';
export * as auth from './auth';
export * as workers from './workers';
export * as namespaces from './namespaces';
export * as serving from './serving';
export * as webhooks from './webhooks';
export { openStream, type StreamEvent, type StreamState } from './sse';
