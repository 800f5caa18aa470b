// webhook-service: the user's webhooks (create with a signing secret shown once, change, enable or
// disable, rotate the secret, send a test ping, delete) and each one's delivery log. Types are
// webhook-service's OpenAPI document (docs/openapi/webhook-service.json, generated into
// ./generated/webhook-service.ts).
import type { ApiClient } from './client';
import type { components } from './generated/webhook-service';
import type { Page } from './types';

type Schemas = components['schemas'];
export type Webhook = Schemas['WebhookResponse'];
export type WebhookWithSecret = Schemas['WebhookWithSecret'];
export type WebhookCreate = Schemas['WebhookCreate'];
export type WebhookUpdate = Schemas['WebhookUpdate'];
export type WebhookEventType = Schemas['EventType'];
export type Delivery = Schemas['DeliveryResponse'];
export type DeliveryStatus = Schemas['DeliveryStatus'];
export type DeliveryAttempt = Schemas['AttemptResponse'];

const path = (id: string, rest = '') => `/api/webhooks/${encodeURIComponent(id)}${rest}`;

/** The caller's webhooks, newest first (never their secrets). */
export function listWebhooks(api: ApiClient, signal?: AbortSignal): Promise<Page<Webhook>> {
	return api.raw<Page<Webhook>>('/api/webhooks', { query: { limit: 200 }, signal });
}

/** Registers a webhook: the answer holds its signing secret, shown this once. */
export function createWebhook(api: ApiClient, body: WebhookCreate): Promise<WebhookWithSecret> {
	return api.data<WebhookWithSecret>('/api/webhooks', { method: 'POST', body });
}

/** Changes only the fields sent (`enabled: false` disables it). */
export function updateWebhook(api: ApiClient, id: string, body: WebhookUpdate): Promise<Webhook> {
	return api.data<Webhook>(path(id), { method: 'PATCH', body });
}

/** Deletes the webhook, its pending deliveries and its delivery log. */
export async function deleteWebhook(api: ApiClient, id: string): Promise<void> {
	await api.data(path(id), { method: 'DELETE' });
}

/** A new signing secret (shown this once); the old one stops signing at once. */
export function rotateSecret(api: ApiClient, id: string): Promise<WebhookWithSecret> {
	return api.data<WebhookWithSecret>(path(id, '/rotate-secret'), { method: 'POST' });
}

/** Sends a signed `ping` now; answers with the delivery as it went (logged like any other). */
export function sendTest(api: ApiClient, id: string): Promise<Delivery> {
	return api.data<Delivery>(path(id, '/test'), { method: 'POST' });
}

/** The delivery log of one webhook, newest first, with every attempt of each delivery. */
export function listDeliveries(
	api: ApiClient,
	id: string,
	options: { limit?: number; cursor?: string | null; signal?: AbortSignal } = {}
): Promise<Page<Delivery>> {
	return api.raw<Page<Delivery>>(path(id, '/deliveries'), {
		query: { limit: options.limit ?? 50, cursor: options.cursor },
		signal: options.signal
	});
}
