// Errors the SDK raises for answers of the server.

/** An RFC 9457 problem as Sovereign sends it (application/problem+json). */
export interface Problem {
  type?: string
  title?: string
  status?: number
  detail?: string
  code?: string
  current_epoch?: number
  index?: number
  retry_after?: number
  errors?: { location?: string; message?: string; value?: unknown }[] | null
  resync?: { resume_after: number; groups: { group_id: string; epoch: number }[] }
  [k: string]: unknown
}

/** The server refused a request; status and problem say why. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly problem: Problem,
    readonly operation: string,
  ) {
    super(`${operation}: ${status} ${problem.code ?? problem.title ?? ""}${problem.detail ? ": " + problem.detail : ""}`)
    this.name = "ApiError"
  }
  get code(): string | undefined {
    return this.problem.code
  }
}

/** Turns a fetch Response that is not 2xx into an ApiError. */
export async function errorFrom(res: Response, operation: string): Promise<ApiError> {
  let problem: Problem = { status: res.status }
  try {
    const text = await res.text()
    if (text) problem = JSON.parse(text) as Problem
  } catch {
    // not JSON: keep the status only
  }
  if (problem.retry_after === undefined) {
    const ra = Number(res.headers.get("Retry-After"))
    if (Number.isFinite(ra) && ra > 0) problem.retry_after = ra
  }
  return new ApiError(res.status, problem, operation)
}
