import { describe, expect, it } from 'vitest';
import type { Delivery } from '$lib/api/webhooks';
import {
	EVENT_TYPES,
	deliveryState,
	eventTypeText,
	eventTypesProblem,
	lastResponseText,
	orderedEventTypes,
	mergeDeliveries,
	webhookUrlProblem
} from './webhooks';

function delivery(over: Partial<Delivery> = {}): Delivery {
	return {
		id: '00000000-0000-0000-0000-000000000001',
		webhook_id: 'w',
		event_id: 'e',
		event_type: 'job.succeeded',
		status: 'pending',
		attempts: 0,
		status_code: null,
		error: null,
		next_retry_at: null,
		created_at: '2026-01-01T00:00:00Z',
		delivered_at: null,
		log: [],
		...over
	};
}

describe('EVENT_TYPES', () => {
	it('lists what webhook-service accepts, in its order', () => {
		expect(EVENT_TYPES).toEqual(['job.succeeded', 'job.failed', 'job.cancelled', 'model.deployed']);
	});
});

describe('orderedEventTypes', () => {
	it("lists a webhook's events in the form's order, unknown ones last", () => {
		expect(orderedEventTypes(['model.deployed', 'job.failed', 'job.succeeded'])).toEqual([
			'job.succeeded',
			'job.failed',
			'model.deployed'
		]);
		expect(orderedEventTypes(['zzz.new', 'job.cancelled'])).toEqual(['job.cancelled', 'zzz.new']);
	});
});

describe('webhookUrlProblem', () => {
	it('accepts https URLs and http ones (the service decides about loopback)', () => {
		expect(webhookUrlProblem('https://example.com/hooks/ftd')).toBeNull();
		expect(webhookUrlProblem('  https://example.com/x?y=1  ')).toBeNull();
		expect(webhookUrlProblem('http://127.0.0.1:9000/hook')).toBeNull();
	});
	it('names what is wrong', () => {
		expect(webhookUrlProblem('')).toMatch(/Enter the URL/);
		expect(webhookUrlProblem('example.com/hook')).toMatch(/Not a URL/);
		expect(webhookUrlProblem('ftp://example.com/hook')).toMatch(/https/);
		expect(webhookUrlProblem('https://user:pw@example.com/')).toMatch(/password/);
		expect(webhookUrlProblem('https://example.com/#top')).toMatch(/fragment/);
		expect(webhookUrlProblem('https://example.com/a b')).toMatch(/spaces/);
		expect(webhookUrlProblem(`https://example.com/${'a'.repeat(2048)}`)).toMatch(/2048/);
	});
});

describe('eventTypesProblem', () => {
	it('needs one event at least', () => {
		expect(eventTypesProblem([])).toMatch(/at least one/);
		expect(eventTypesProblem(['job.failed'])).toBeNull();
	});
});

describe('deliveryState', () => {
	it('tells a pending delivery never tried from one waiting for its retry', () => {
		expect(deliveryState({ status: 'pending', attempts: 0 })).toBe('pending');
		expect(deliveryState({ status: 'pending', attempts: 2 })).toBe('retrying');
		expect(deliveryState({ status: 'delivered', attempts: 1 })).toBe('delivered');
		expect(deliveryState({ status: 'failed', attempts: 8 })).toBe('failed');
	});
});

describe('eventTypeText and lastResponseText', () => {
	it('says which is the test ping', () => {
		expect(eventTypeText('ping')).toBe('ping (test)');
		expect(eventTypeText('job.failed')).toBe('job.failed');
	});
	it('shows the status code, else the error, else that nothing was sent', () => {
		expect(lastResponseText(delivery({ status_code: 503, error: 'HTTP 503', attempts: 1 }))).toBe('HTTP 503');
		expect(lastResponseText(delivery({ error: 'timed out after 10 s', attempts: 1 }))).toBe(
			'timed out after 10 s'
		);
		expect(lastResponseText(delivery())).toBe('not sent yet');
		expect(lastResponseText(delivery({ attempts: 1 }))).toBe('no response');
	});
});

describe('mergeDeliveries', () => {
	it('keeps each delivery once, the fresh copy, newest first', () => {
		const a = delivery({ id: 'a', created_at: '2026-01-01T00:00:01Z' });
		const b = delivery({ id: 'b', created_at: '2026-01-01T00:00:03Z' });
		const a2 = { ...a, status: 'delivered' as const, attempts: 1, status_code: 200 };
		const c = delivery({ id: 'c', created_at: '2026-01-01T00:00:02Z' });
		const merged = mergeDeliveries([b, a], [a2, c]);
		expect(merged.map((d) => d.id)).toEqual(['b', 'c', 'a']);
		expect(merged[2]?.status).toBe('delivered');
	});
});
