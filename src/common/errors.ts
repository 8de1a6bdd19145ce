/**
 * Errors a user can cause carry a stable code and one line that says what was
 * wrong and what to do. The CLI prints `message` alone; the API maps `code` to
 * an HTTP status.
 */
export type ErrorCode =
  | 'invalid-argument'
  | 'not-found'
  | 'conflict'
  | 'exhausted'
  | 'precondition'
  | 'unavailable'
  | 'internal';

export class TendrilError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'TendrilError';
  }
}

export const invalid = (message: string) => new TendrilError('invalid-argument', message);
export const notFound = (message: string) => new TendrilError('not-found', message);
export const conflict = (message: string) => new TendrilError('conflict', message);

const httpStatus: Record<ErrorCode, number> = {
  'invalid-argument': 400,
  'not-found': 404,
  conflict: 409,
  exhausted: 507,
  precondition: 412,
  unavailable: 503,
  internal: 500,
};

export function statusOf(code: ErrorCode): number {
  return httpStatus[code];
}

export function codeOfStatus(status: number): ErrorCode {
  for (const [code, s] of Object.entries(httpStatus)) if (s === status) return code as ErrorCode;
  return 'internal';
}
