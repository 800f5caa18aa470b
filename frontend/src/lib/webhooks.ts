// Webhooks as the Webhooks page shows them: the events one may subscribe to, the URL checked
// before it is sent (webhook-service checks it again, with the rules only it knows: public hosts,
// its operator's exceptions), and each delivery's state in the log.
import type { Delivery, WebhookEventType } from '$lib/api/webhooks';

/** webhook-service's EventType, each with what it tells (the record names every one). */
export const EVENT_TYPE_TEXT: Record<WebhookEventType, string> = {
	'job.succeeded': 'a fine-tuning job completed',
	'job.failed': 'a job failed',
	'job.cancelled': 'a job was cancelled',
	'model.deployed': 'a model was deployed'
};
export const EVENT_TYPES = Object.keys(EVENT_TYPE_TEXT) as WebhookEventType[];

/** webhook-service's MAX_URL_LENGTH. */
export const MAX_URL_LENGTH = 2048;

/** What is wrong with the URL before it is sent, or null (the service has the last word). */
export function webhookUrlProblem(raw: string): string | null {
	const url = raw.trim();
	if (!url) return 'Enter the URL events are sent to.';
	if (url.length > MAX_URL_LENGTH) return `At most ${MAX_URL_LENGTH} characters.`;
	if (/[\s\u0000-\u001f\u007f]/.test(url)) return 'No spaces or control characters.';
	let parsed: URL;
	try {
		parsed = new URL(url);
	} catch {
		return 'Not a URL: write it in full, e.g. https://example.com/hooks/ftd.';
	}
	if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') return 'The URL must start with https://.';
	if (parsed.username || parsed.password) return 'No user name or password in the URL.';
	if (url.includes('#')) return 'No fragment (#...) in the URL.';
	return null;
}

/** A webhook's events in the order the form lists them (the service keeps its own order). */
export function orderedEventTypes(types: readonly string[]): string[] {
	const rank = (t: string) => {
		const i = (EVENT_TYPES as readonly string[]).indexOf(t);
		return i < 0 ? EVENT_TYPES.length : i;
	};
	return [...types].sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
}

export function eventTypesProblem(selected: readonly string[]): string | null {
	return selected.length === 0 ? 'Choose at least one event.' : null;
}

/** A delivery's state: `pending` with an attempt made is waiting for its retry. */
export type DeliveryState = 'pending' | 'retrying' | 'delivered' | 'failed';

export function deliveryState(d: Pick<Delivery, 'status' | 'attempts'>): DeliveryState {
	if (d.status === 'pending') return d.attempts > 0 ? 'retrying' : 'pending';
	return d.status;
}

export const DELIVERY_STATE_LABEL: Record<DeliveryState, string> = {
	pending: 'Pending',
	retrying: 'Retrying',
	delivered: 'Delivered',
	failed: 'Failed'
};

/** The log's event column: the test ping says what it is. */
export function eventTypeText(eventType: string): string {
	return eventType === 'ping' ? 'ping (test)' : eventType;
}

/** The last response as one short phrase: `HTTP 200`, the error, or that none came yet. */
export function lastResponseText(d: Pick<Delivery, 'status_code' | 'error' | 'attempts'>): string {
	if (d.status_code !== null) return `HTTP ${d.status_code}`;
	if (d.error) return d.error;
	return d.attempts === 0 ? 'not sent yet' : 'no response';
}

/** Deliveries newest first, each once (a fresh copy replaces an older one of the same id). */
export function mergeDeliveries(older: readonly Delivery[], fresh: readonly Delivery[]): Delivery[] {
	const byId = new Map<string, Delivery>();
	for (const d of older) byId.set(d.id, d);
	for (const d of fresh) byId.set(d.id, d);
	const at = (s: string) => Date.parse(s) || 0;
	return [...byId.values()].sort((a, b) => at(b.created_at) - at(a.created_at) || (a.id < b.id ? 1 : -1));
}
