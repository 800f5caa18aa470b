import { describe, expect, it } from 'vitest';
import { parsePrefill } from './prefill';

const parse = (q: string) => parsePrefill(new URLSearchParams(q));

describe('parsePrefill', () => {
	it('reads the type, base model, dataset and hyperparameters of a "Train again" link', () => {
		expect(
			parse(
				'type=embedding&base_model=sentence-transformers/all-MiniLM-L6-v2&dataset=ds-1&epochs=6&learning_rate=6e-5&from=job-1'
			)
		).toEqual({
			jobType: 'embedding',
			baseModel: 'sentence-transformers/all-MiniLM-L6-v2',
			datasetId: 'ds-1',
			dataUrl: null,
			hyper: { epochs: '6', learning_rate: '0.00006' },
			from: 'job-1'
		});
	});

	it('is empty without parameters', () => {
		expect(parse('')).toEqual({
			jobType: null,
			baseModel: null,
			datasetId: null,
			dataUrl: null,
			hyper: {},
			from: null
		});
	});

	it('leaves out what the contract refuses: unknown type, out of range, fractional epochs, non-https', () => {
		const p = parse('type=gan&epochs=3');
		expect(p.jobType).toBeNull();
		expect(p.hyper).toEqual({}); // hyperparameters are the type's: none without one
		expect(parse('type=classifier&epochs=1000&learning_rate=0').hyper).toEqual({});
		expect(parse('type=classifier&epochs=2.5&learning_rate=abc').hyper).toEqual({});
		expect(parse('type=classifier&nonsense=1').hyper).toEqual({});
		expect(parse('data_url=http://plain.example/x.csv').dataUrl).toBeNull();
		expect(parse('data_url=https://d.example/x.csv').dataUrl).toBe('https://d.example/x.csv');
		expect(parse('dataset=../../etc').datasetId).toBeNull();
	});
});
