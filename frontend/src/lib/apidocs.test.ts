import { describe, expect, it } from 'vitest';
import { SERVICE_DOCS, cliLines, docsPath, openAiExample, openApiPath } from './apidocs';

describe('SERVICE_DOCS', () => {
	it('names every service the gateway has docs for, once', () => {
		const names = SERVICE_DOCS.map((d) => d.service);
		expect(names).toEqual(['job-api', 'data-service', 'registry-service', 'model-server', 'webhook-service']);
		expect(docsPath('model-server')).toBe('/docs/model-server');
		expect(openApiPath('webhook-service')).toBe('/openapi/webhook-service.json');
	});
});

describe('openAiExample', () => {
	it('calls the base URL with the key from the environment, never a literal key', () => {
		const code = openAiExample('https://ftd.example.com/v1');
		expect(code).toContain(
			'OpenAI(base_url="https://ftd.example.com/v1", api_key=os.environ["FTD_API_KEY"])'
		);
		expect(code.split('\n').filter((l) => l.trim()).length).toBe(5);
	});
});

describe('cliLines', () => {
	it('installs the package and logs in to this server', () => {
		const text = cliLines('https://ftd.example.com');
		expect(text).toContain('pip install ./libs/ftd');
		expect(text).toContain('ftd --base-url https://ftd.example.com login');
	});
});
