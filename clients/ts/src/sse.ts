// A text/event-stream parser (WHATWG HTML §9.2.6) over a fetch body, so
// streams can carry an Authorization header (EventSource cannot).

export interface SSEMessage {
  /** The event type; "message" when the stream named none. */
  event: string
  data: string
  /** The last event id seen on the stream (the id field persists across events). */
  id: string
  /** A reconnection delay the server asked for, in ms. */
  retry?: number
}

/**
 * Yields each dispatched event of a text/event-stream body. Handles chunks
 * split anywhere (even inside a multi-byte character or between CR and LF),
 * CR, LF and CRLF line ends, comments, multi-line data and a leading BOM.
 */
export async function* parseSSE(body: ReadableStream<Uint8Array>, signal?: AbortSignal): AsyncGenerator<SSEMessage> {
  const reader = body.getReader()
  const decoder = new TextDecoder("utf-8")
  let buf = ""
  let first = true
  let lastId = ""
  let event = ""
  let data: string[] = []
  let retry: number | undefined
  let pendingCR = false
  const onAbort = () => void reader.cancel().catch(() => {})
  signal?.addEventListener("abort", onAbort, { once: true })
  try {
    for (;;) {
      const { value, done } = await reader.read()
      if (done) return // an unterminated last event is discarded, as the spec says
      let text = decoder.decode(value, { stream: true })
      if (text.length === 0) continue
      if (first && text.length > 0) {
        if (text.charCodeAt(0) === 0xfeff) text = text.slice(1)
        first = false
      }
      if (pendingCR && text.startsWith("\n")) text = text.slice(1)
      pendingCR = false
      buf += text
      let start = 0
      for (;;) {
        let i = start
        while (i < buf.length && buf[i] !== "\n" && buf[i] !== "\r") i++
        if (i >= buf.length) break
        const line = buf.slice(start, i)
        if (buf[i] === "\r") {
          if (i + 1 < buf.length) {
            start = buf[i + 1] === "\n" ? i + 2 : i + 1
          } else {
            pendingCR = true // the LF of a CRLF may come in the next chunk
            start = i + 1
          }
        } else start = i + 1
        if (line === "") {
          if (data.length > 0) {
            const msg: SSEMessage = { event: event || "message", data: data.join("\n"), id: lastId }
            if (retry !== undefined) msg.retry = retry
            yield msg
          }
          event = ""
          data = []
          retry = undefined
          continue
        }
        if (line.startsWith(":")) continue
        const colon = line.indexOf(":")
        const field = colon < 0 ? line : line.slice(0, colon)
        let val = colon < 0 ? "" : line.slice(colon + 1)
        if (val.startsWith(" ")) val = val.slice(1)
        switch (field) {
          case "event":
            event = val
            break
          case "data":
            data.push(val)
            break
          case "id":
            if (!val.includes("\0")) lastId = val
            break
          case "retry":
            if (/^[0-9]+$/.test(val)) retry = Number(val)
            break
        }
      }
      buf = buf.slice(start)
      if (buf.length > 1 << 20) throw new Error("event stream line longer than 1 MiB")
    }
  } finally {
    signal?.removeEventListener("abort", onAbort)
    reader.releaseLock()
  }
}
