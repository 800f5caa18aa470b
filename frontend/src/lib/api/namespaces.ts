// job-api: the namespaces (the `owner` of `owner/name`) the caller may name output models in.
import type { ApiClient } from './client';
import type { Namespace } from './types';

export function listNamespaces(api: ApiClient, signal?: AbortSignal): Promise<Namespace[]> {
	return api.data<Namespace[]>('/api/namespaces', { signal });
}
