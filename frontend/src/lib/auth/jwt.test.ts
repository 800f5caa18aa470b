import { describe, expect, it } from 'vitest';
import { readClaims, tokenProblem } from './jwt';

const b64url = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
const jwt = (claims: unknown) => `${b64url({ alg: 'HS256', typ: 'JWT' })}.${b64url(claims)}.c2ln`;

describe('jwt', () => {
	it('reads sub, exp and roles', () => {
		expect(readClaims(jwt({ sub: 'alice', exp: 2e9, roles: ['admin'] }))).toEqual({
			sub: 'alice',
			exp: 2e9,
			roles: ['admin']
		});
		expect(readClaims(jwt({ sub: 'ünï' }))?.sub).toBe('ünï');
	});

	it('reads a single role as the services do, besides the list', () => {
		expect(readClaims(jwt({ sub: 'op', role: 'admin' }))?.roles).toEqual(['admin']);
		expect(readClaims(jwt({ sub: 'op', roles: ['admin'], role: 'admin' }))?.roles).toEqual(['admin']);
		expect(readClaims(jwt({ sub: 'op', roles: ['viewer', 7, ''], role: 'admin' }))?.roles).toEqual([
			'viewer',
			'admin'
		]);
		expect(readClaims(jwt({ sub: 'u', role: 42 }))?.roles).toEqual([]);
	});

	it('says why a pasted text is not usable', () => {
		expect(tokenProblem('')).toMatch(/Paste/);
		expect(tokenProblem('hello')).toMatch(/not a JSON Web Token/);
		expect(tokenProblem(jwt({ sub: 'a', exp: 100 }), 200)).toMatch(/expired/);
		expect(tokenProblem(`Bearer ${jwt({ sub: 'a', exp: 300 })}`, 200)).toBeNull();
	});
});
