// Reads (never verifies: the services do) the claims of a JWT to show who is signed in and when
// the session ends.

export interface Claims {
	sub: string | null;
	exp: number | null;
	roles: string[];
}

function base64UrlDecode(part: string): string {
	const padded = part
		.replace(/-/g, '+')
		.replace(/_/g, '/')
		.padEnd(Math.ceil(part.length / 4) * 4, '=');
	const binary = atob(padded);
	const bytes = Uint8Array.from(binary, (c) => c.charCodeAt(0));
	return new TextDecoder().decode(bytes);
}

/** Roles as the services read them: the `roles` list and a single `role`, both optional. */
function rolesOf(payload: Record<string, unknown>): string[] {
	const roles = Array.isArray(payload.roles)
		? payload.roles.filter((r): r is string => typeof r === 'string' && r !== '')
		: [];
	if (typeof payload.role === 'string' && payload.role && !roles.includes(payload.role))
		roles.push(payload.role);
	return roles;
}

/** The claims of a well-formed JWT, or null when the text is not one. */
export function readClaims(token: string): Claims | null {
	const parts = token.trim().split('.');
	if (parts.length !== 3 || !parts[1]) return null;
	try {
		const payload: unknown = JSON.parse(base64UrlDecode(parts[1]));
		if (typeof payload !== 'object' || payload === null) return null;
		const p = payload as Record<string, unknown>;
		return {
			sub: typeof p.sub === 'string' ? p.sub : null,
			exp: typeof p.exp === 'number' ? p.exp : null,
			roles: rolesOf(p)
		};
	} catch {
		return null;
	}
}

/** Why a pasted token cannot be used, or null when it looks usable. */
export function tokenProblem(token: string, nowSeconds = Date.now() / 1000): string | null {
	const text = token.trim().replace(/^Bearer\s+/i, '');
	if (!text) return 'Paste a token.';
	const claims = readClaims(text);
	if (!claims) return 'This is not a JSON Web Token (three dot-separated parts).';
	if (claims.exp !== null && claims.exp <= nowSeconds) return 'This token has expired.';
	return null;
}
