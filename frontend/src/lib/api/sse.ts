// Server-Sent Events over fetch, so the token travels in the Authorization header and never in a
// URL that a proxy or server could log (EventSource cannot send headers). Reconnects with
// Last-Event-ID (job-api replays what was missed), backing off; after repeated failures the caller
// is told to fall back to polling, and the stream keeps trying in the background.
import { createParser, type EventSourceMessage } from 'eventsource-parser';
import { errorFrom, type ApiError } from './client';

export interface StreamEvent {
	event: string;
	data: string;
	id: string | null;
}

export type StreamState = 'connecting' | 'open' | 'retrying' | 'polling' | 'closed';

export interface StreamOptions {
	url: string;
	headers: () => Record<string, string>;
	onEvent: (event: StreamEvent) => void;
	onState?: (state: StreamState, error?: unknown) => void;
	/** Failed connections in a row before the caller is told to poll (`polling`). */
	failuresBeforePolling?: number;
	/** Delays between reconnections, in ms, by failure count (the last one repeats). */
	backoffMs?: readonly number[];
	fetcher?: typeof fetch;
	/** A fatal answer (401/403/404): the stream stops for good. */
	onFatal?: (error: ApiError) => void;
	/** Resume after this history row: the server replays what follows (and sends no snapshot). */
	lastEventId?: string | null;
}

export interface StreamHandle {
	close(): void;
	readonly lastEventId: string | null;
}

const FATAL = new Set([401, 403, 404]);

/** Reads one response body, feeding each decoded chunk to the SSE parser. */
export async function readEvents(
	body: ReadableStream<Uint8Array>,
	onEvent: (event: StreamEvent) => void,
	signal?: AbortSignal
): Promise<void> {
	const parser = createParser({
		onEvent(message: EventSourceMessage) {
			onEvent({ event: message.event ?? 'message', data: message.data, id: message.id ?? null });
		}
	});
	const reader = body.getReader();
	const decoder = new TextDecoder();
	const cancel = () => void reader.cancel().catch(() => {});
	signal?.addEventListener('abort', cancel, { once: true });
	try {
		for (;;) {
			const { value, done } = await reader.read();
			if (done) {
				parser.feed(decoder.decode());
				return;
			}
			parser.feed(decoder.decode(value, { stream: true }));
		}
	} finally {
		signal?.removeEventListener('abort', cancel);
	}
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
	return new Promise((resolve) => {
		const timer = setTimeout(resolve, ms);
		signal.addEventListener(
			'abort',
			() => {
				clearTimeout(timer);
				resolve();
			},
			{ once: true }
		);
	});
}

export function openStream(options: StreamOptions): StreamHandle {
	const controller = new AbortController();
	const fetcher = options.fetcher ?? ((...args) => fetch(...args));
	const backoff = options.backoffMs ?? [1000, 2000, 5000, 10000];
	const failuresBeforePolling = options.failuresBeforePolling ?? 3;
	const setState = options.onState ?? (() => {});
	let lastEventId: string | null = options.lastEventId ?? null;

	async function run(): Promise<void> {
		let failures = 0;
		while (!controller.signal.aborted) {
			setState(failures >= failuresBeforePolling ? 'polling' : failures ? 'retrying' : 'connecting');
			let gotEvents = false;
			try {
				const headers: Record<string, string> = {
					Accept: 'text/event-stream',
					'Cache-Control': 'no-cache',
					...options.headers()
				};
				if (lastEventId !== null) headers['Last-Event-ID'] = lastEventId;
				const response = await fetcher(options.url, { headers, signal: controller.signal });
				if (!response.ok || !response.body) {
					let body: unknown = null;
					try {
						body = await response.json();
					} catch {
						body = null;
					}
					const error = errorFrom(response.status, body, response.statusText);
					if (FATAL.has(response.status)) {
						options.onFatal?.(error);
						setState('closed', error);
						return;
					}
					throw error;
				}
				if (!(response.headers.get('content-type') ?? '').includes('text/event-stream')) {
					throw new Error('the server did not answer with an event stream');
				}
				setState('open');
				await readEvents(
					response.body,
					(event) => {
						gotEvents = true;
						if (event.id !== null) lastEventId = event.id;
						options.onEvent(event);
					},
					controller.signal
				);
				// The server closed a healthy stream: reconnect at once.
				if (gotEvents) failures = 0;
			} catch (error) {
				if (controller.signal.aborted) break;
				failures = gotEvents ? 1 : failures + 1;
				setState(failures >= failuresBeforePolling ? 'polling' : 'retrying', error);
			}
			if (controller.signal.aborted) break;
			const delay = backoff[Math.min(Math.max(failures - 1, 0), backoff.length - 1)] ?? 1000;
			await sleep(failures ? delay : 250, controller.signal);
		}
		setState('closed');
	}

	void run();
	return {
		close: () => controller.abort(),
		get lastEventId() {
			return lastEventId;
		}
	};
}
