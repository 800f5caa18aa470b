// The signed-in session: the token lives in sessionStorage only (gone when the tab closes, never
// in localStorage, a cookie or a URL).
import { readClaims, type Claims } from './jwt';

const KEY = 'ftd.token';

function load(): string | null {
	try {
		return typeof sessionStorage === 'undefined' ? null : sessionStorage.getItem(KEY);
	} catch {
		return null;
	}
}

class Session {
	token = $state<string | null>(load());
	/** Set when the server refused the token, so the sign-in page can say why. */
	reason = $state<string | null>(null);
	claims = $derived<Claims | null>(this.token ? readClaims(this.token) : null);
	user = $derived(this.claims?.sub ?? null);
	/** What the UI offers follows the token's roles; the services decide what is allowed. */
	admin = $derived(this.claims?.roles.includes('admin') ?? false);

	signIn(token: string): void {
		const text = token.trim().replace(/^Bearer\s+/i, '');
		this.token = text;
		this.reason = null;
		try {
			sessionStorage.setItem(KEY, text);
		} catch {
			// Storage disabled: the session lasts as long as the page.
		}
	}

	signOut(reason: string | null = null): void {
		this.token = null;
		this.reason = reason;
		try {
			sessionStorage.removeItem(KEY);
		} catch {
			// nothing stored
		}
	}

	get expired(): boolean {
		const exp = this.claims?.exp;
		return exp !== null && exp !== undefined && exp * 1000 <= Date.now();
	}
}

export const session = new Session();
