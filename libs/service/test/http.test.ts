import { createServer, type Server } from 'node:http';
import { connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { HttpError, parseJsonBody, readBody } from '../src/http.js';

describe('request bodies', () => {
  const servers: Server[] = [];
  afterEach(() => {
    for (const s of servers.splice(0)) s.close();
  });

  /** A server whose every request's body goes through readBody; resolves with what it gave. */
  async function bodyOf(send: (port: number) => void): Promise<string | HttpError> {
    let settle: (v: string | HttpError) => void = () => {};
    const result = new Promise<string | HttpError>((r) => {
      settle = r;
    });
    const server = createServer((req, res) => {
      readBody(req, 1_024).then(
        (text) => {
          settle(text);
          res.end();
        },
        (error: HttpError) => {
          settle(error);
          res.destroy();
        },
      );
    });
    servers.push(server);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    send((server.address() as { port: number }).port);
    return result;
  }

  const raw = (port: number, head: string, body: Buffer, end: boolean) => {
    const socket = connect(port, '127.0.0.1', () => {
      socket.write(head);
      socket.write(body);
      if (end) socket.end();
      else setTimeout(() => socket.destroy(), 50);
    });
    socket.on('error', () => {});
  };

  it('reads UTF-8', async () => {
    const body = Buffer.from('{"entity_id":"é"}');
    const got = await bodyOf((port) =>
      raw(port, `POST / HTTP/1.1\r\nHost: x\r\nContent-Length: ${body.length}\r\n\r\n`, body, true),
    );
    expect(got).toBe('{"entity_id":"é"}');
  });

  it('refuses bytes that are not UTF-8 (400), never replacing them', async () => {
    const body = Buffer.from([0x7b, 0x22, 0x75, 0xff, 0x22, 0x7d]);
    const got = await bodyOf((port) =>
      raw(port, `POST / HTTP/1.1\r\nHost: x\r\nContent-Length: ${body.length}\r\n\r\n`, body, true),
    );
    expect(got).toMatchObject({ status: 400, message: 'body is not valid UTF-8' });
  });

  it('a client that goes away mid-body is a 499, not a server error', async () => {
    const got = await bodyOf((port) =>
      raw(port, 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n', Buffer.from('{"entity_id":'), false),
    );
    expect(got).toBeInstanceOf(HttpError);
    expect(got).toMatchObject({ status: 499, code: 'BAD_REQUEST' });
  });

  it('a body that is not JSON is one line, whatever it holds', () => {
    expect(() => parseJsonBody('x\ny\r\u2028', 8)).toThrow(/^body is not JSON: [^\n\r]*x\\ny/);
    let message = '';
    try {
      parseJsonBody(`"${'a'.repeat(10_000)}`, 8);
    } catch (error) {
      message = (error as HttpError).message;
    }
    expect(message).toMatch(/^body is not JSON: /);
    expect(message.length).toBeLessThan(300);
  });
});
