// Dates, durations and numbers as the UI shows them.

export function formatDate(iso: string | null | undefined): string {
	if (!iso) return '—';
	const d = new Date(iso);
	if (Number.isNaN(d.getTime())) return '—';
	return d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}

export function relativeTime(iso: string | null | undefined, now = Date.now()): string {
	if (!iso) return '—';
	const t = new Date(iso).getTime();
	if (Number.isNaN(t)) return '—';
	const s = Math.round((now - t) / 1000);
	if (s < 45) return 'just now';
	if (s < 90) return 'a minute ago';
	const m = Math.round(s / 60);
	if (m < 60) return `${m} minutes ago`;
	const h = Math.round(m / 60);
	if (h < 24) return h === 1 ? 'an hour ago' : `${h} hours ago`;
	const days = Math.round(h / 24);
	return days === 1 ? 'yesterday' : `${days} days ago`;
}

export function formatDuration(seconds: number | null | undefined): string {
	if (seconds === null || seconds === undefined || !Number.isFinite(seconds) || seconds < 0) return '—';
	const s = Math.round(seconds);
	if (s < 60) return `${s}s`;
	const m = Math.floor(s / 60);
	if (m < 60) return `${m}m ${String(s % 60).padStart(2, '0')}s`;
	const h = Math.floor(m / 60);
	return `${h}h ${String(m % 60).padStart(2, '0')}m`;
}

/** How long a job ran: started to completed, or started to now while it runs. */
export function jobDuration(
	job: { started_at: string | null; completed_at: string | null; created_at: string },
	now = Date.now()
): number | null {
	if (!job.started_at) return null;
	const start = new Date(job.started_at).getTime();
	const end = job.completed_at ? new Date(job.completed_at).getTime() : now;
	return (end - start) / 1000;
}

export function formatNumber(value: number | null | undefined, digits = 4): string {
	if (value === null || value === undefined || !Number.isFinite(value)) return '—';
	if (Number.isInteger(value)) return value.toLocaleString();
	const abs = Math.abs(value);
	if (abs !== 0 && (abs < 1e-3 || abs >= 1e6)) return value.toExponential(2);
	return Number(value.toPrecision(digits)).toString();
}

export function formatBytes(bytes: number | null | undefined): string {
	if (bytes === null || bytes === undefined || !Number.isFinite(bytes)) return '—';
	const units = ['B', 'KB', 'MB', 'GB', 'TB'];
	let v = bytes;
	let i = 0;
	while (v >= 1024 && i < units.length - 1) {
		v /= 1024;
		i++;
	}
	return `${i === 0 ? v : v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

export function shortId(id: string): string {
	return id.slice(0, 8);
}
