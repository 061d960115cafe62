// The typed client of the Xintu gateway's REST API. Paths, parameters, bodies and answers come
// from `schema.d.ts`, which `npm run generate` writes from the gateway's OpenAPI document
// (`../openapi.json`); CI fails when either is older than the gateway.
import createClient, { type Client, type Middleware } from "openapi-fetch";

import type { components, paths } from "./schema.js";

export type { components, paths };

/** The body of every error answer: `{"error": {code, message, request_id}}`, `code` stable. */
export type ErrorBody = components["schemas"]["ErrorBody"];

export interface XintuClientOptions {
  /** The API host, e.g. `https://api.aifuture.net.cn` (no trailing path). */
  baseUrl: string;
  /** An app's client token, when it already has one. */
  clientToken?: string;
  /** A fetch to use instead of the global one (tests, proxies). */
  fetch?: typeof globalThis.fetch;
}

/** The typed client, plus the client token it sends as `Authorization: Bearer`. */
export interface XintuClient extends Client<paths> {
  /** Replaces the token sent with every request (undefined: none). */
  setClientToken(token: string | undefined): void;
}

export function createXintuClient(options: XintuClientOptions): XintuClient {
  let token = options.clientToken;
  const bearer: Middleware = {
    onRequest({ request }) {
      if (token !== undefined) {
        request.headers.set("Authorization", `Bearer ${token}`);
      }
      return request;
    },
  };
  const client = createClient<paths>({
    baseUrl: options.baseUrl,
    ...(options.fetch ? { fetch: options.fetch } : {}),
  });
  client.use(bearer);
  return Object.assign(client, {
    setClientToken(next: string | undefined) {
      token = next;
    },
  });
}

/** Lower-case hex SHA-256 of a photo's bytes: the key `POST /api/v1/photos/lookup` takes. */
export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  // Browsers, Electron and Node.js 19+ have Web Crypto as a global; Node.js 18 has it in a module.
  const subtle = globalThis.crypto?.subtle ?? (await import("node:crypto")).webcrypto.subtle;
  // A copy: Web Crypto takes only memory that cannot be shared between threads.
  const digest = await subtle.digest("SHA-256", new Uint8Array(bytes));
  return Array.from(new Uint8Array(digest), (byte) => byte.toString(16).padStart(2, "0")).join("");
}

/** An error answer as an exception: the HTTP status and the gateway's stable code. */
export class XintuApiError extends Error {
  constructor(
    readonly status: number,
    readonly body: ErrorBody | undefined,
  ) {
    super(`${status} ${body?.error.code ?? "unknown"}: ${body?.error.message ?? "no error body"}`);
    this.name = "XintuApiError";
  }
}

/**
 * The answer's data, or a {@link XintuApiError} for an error answer: for callers that treat every
 * error alike. `openapi-fetch` results carry either `data` or `error`.
 */
export function expectData<T>(result: { data?: T; error?: unknown; response: Response }): T {
  if (result.data !== undefined && result.response.ok) {
    return result.data;
  }
  throw new XintuApiError(result.response.status, result.error as ErrorBody | undefined);
}
