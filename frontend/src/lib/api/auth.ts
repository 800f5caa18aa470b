// Development sign-in: job-api's dev-only route (routes_auth.py, see frontend/README.md):
//   GET  /api/auth/dev-token  -> 200 {"data": {"enabled": true}} only when FTD_ENV=development
//   POST /api/auth/dev-token {"sub": "alice"} -> 200 {"data": {"access_token", "token_type", "expires_in"}}
// Anywhere else the GET answers 404 and the UI offers only "paste a token".
import type { ApiClient } from './client';

export async function devSignInAvailable(api: ApiClient): Promise<boolean> {
	try {
		const data = await api.data<{ enabled?: boolean }>('/api/auth/dev-token');
		return data?.enabled === true;
	} catch {
		return false;
	}
}

export async function mintDevToken(api: ApiClient, sub: string): Promise<string> {
	const data = await api.data<{ access_token: string }>('/api/auth/dev-token', {
		method: 'POST',
		body: { sub }
	});
	return data.access_token;
}
