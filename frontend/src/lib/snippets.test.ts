import { describe, expect, it } from 'vitest';
import { curlSnippet, pythonSnippet } from './snippets';

describe('usage snippets', () => {
	it('calls the endpoint of the job type', () => {
		const base = { model: 'alice/emb', baseUrl: 'http://h:1/v1/' };
		expect(curlSnippet({ ...base, jobType: 'embedding' })).toContain('http://h:1/v1/embeddings');
		expect(curlSnippet({ ...base, jobType: 'classifier' })).toContain('/v1/classify');
		expect(curlSnippet({ ...base, jobType: 'llm_lora' })).toContain('/v1/chat/completions');
		expect(pythonSnippet({ ...base, jobType: 'embedding' })).toContain('client.embeddings.create(');
		expect(pythonSnippet({ ...base, jobType: 'classifier' })).toContain('httpx.post(');
	});

	it("sends the server's key from the environment, never a literal", () => {
		const t = {
			jobType: 'embedding' as const,
			model: 'a/b',
			baseUrl: 'http://h/v1',
			keyEnv: 'FTD_SERVE_API_KEY'
		};
		expect(curlSnippet(t)).toContain('-H "Authorization: Bearer $FTD_SERVE_API_KEY"');
		expect(pythonSnippet(t)).toContain('api_key=os.environ["FTD_SERVE_API_KEY"]');
		expect(pythonSnippet({ ...t, jobType: 'classifier' })).toContain('os.environ["FTD_SERVE_API_KEY"]');
		expect(curlSnippet({ ...t, keyEnv: null })).not.toContain('Authorization');
	});

	it('quotes a model name safely for the shell and for Python', () => {
		const t = { jobType: 'embedding' as const, model: 'o\'brien/m"x', baseUrl: 'http://h/v1' };
		const curl = curlSnippet(t);
		expect(curl).toContain(`'\\''`);
		expect(pythonSnippet(t)).toContain('model="o\'brien/m\\"x"');
	});
});
