// API keys as the Keys page shows them.
import type { ApiKey } from '$lib/api/serving';

/** The name's problem as model-server checks it (1 to 100 characters), or null. */
export function keyNameProblem(name: string): string | null {
	const trimmed = name.trim();
	if (!trimmed) return 'Name the key: what it is for.';
	if (trimmed.length > 100) return 'At most 100 characters.';
	return null;
}

/** Active keys first (newest first), then revoked ones (latest revoked first). */
export function sortKeys(keys: readonly ApiKey[]): ApiKey[] {
	const at = (s: string | null) => (s ? Date.parse(s) || 0 : 0);
	return [...keys].sort((a, b) =>
		a.active !== b.active
			? a.active
				? -1
				: 1
			: a.active
				? at(b.created_at) - at(a.created_at)
				: at(b.revoked_at) - at(a.revoked_at)
	);
}
