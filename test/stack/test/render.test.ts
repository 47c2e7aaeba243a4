import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  escapeProperty,
  generateClusterId,
  renderKafkaPom,
  renderLog4j2Xml,
  renderServerProperties,
} from '../src/kafka.js';
import { redisArgs } from '../src/redis.js';
import { apicurioUrl, findApicurioJar, registrySystemProperties } from '../src/registry.js';
import { parseJavaMajor } from '../src/system.js';

function parseProperties(text: string): Map<string, string> {
  const map = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || !line.includes('=')) continue;
    const i = line.indexOf('=');
    map.set(line.slice(0, i), line.slice(i + 1));
  }
  return map;
}

describe('kafka server.properties', () => {
  const props = parseProperties(renderServerProperties({ port: 19092, controllerPort: 19093, logDir: '/data/kafka' }));

  it('configures a single combined KRaft node on loopback', () => {
    expect(props.get('process.roles')).toBe('broker,controller');
    expect(props.get('node.id')).toBe('1');
    expect(props.get('controller.quorum.voters')).toBe('1@127.0.0.1:19093');
    expect(props.get('listeners')).toBe('PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093');
    expect(props.get('advertised.listeners')).toBe('PLAINTEXT://127.0.0.1:19092');
    expect(props.get('controller.listener.names')).toBe('CONTROLLER');
    expect(props.get('listener.security.protocol.map')).toBe('PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT');
    expect(props.get('inter.broker.listener.name')).toBe('PLAINTEXT');
    expect(props.get('log.dirs')).toBe('/data/kafka');
  });

  it('uses replication factor 1 for internal topics and no rebalance delay', () => {
    expect(props.get('offsets.topic.replication.factor')).toBe('1');
    expect(props.get('transaction.state.log.replication.factor')).toBe('1');
    expect(props.get('transaction.state.log.min.isr')).toBe('1');
    expect(props.get('group.initial.rebalance.delay.ms')).toBe('0');
    expect(props.get('num.partitions')).toBe('1');
    expect(props.has('auto.create.topics.enable')).toBe(false); // Kafka's default (true) applies
  });

  it('escapes backslashes in paths', () => {
    const p = parseProperties(renderServerProperties({ port: 1, controllerPort: 2, logDir: 'C:\\kafka' }));
    expect(p.get('log.dirs')).toBe('C:\\\\kafka');
  });
});

/**
 * What java.util.Properties.load(InputStream) reads from these bytes: ISO-8859-1, then `\\uXXXX`
 * and the other escapes; the key ends at the first unescaped `=`, `:` or space.
 */
function loadJavaProperties(bytes: Buffer): Map<string, string> {
  const decode = (text: string) =>
    text.replace(/\\(u[0-9a-fA-F]{4}|.)/g, (_, e: string) =>
      e.length === 5
        ? String.fromCharCode(Number.parseInt(e.slice(1), 16))
        : ({ t: '\t', n: '\n', r: '\r', f: '\f' }[e] ?? e),
    );
  const map = new Map<string, string>();
  for (const line of bytes.toString('latin1').split('\n')) {
    if (/^\s*([#!]|$)/.test(line)) continue;
    const m = /^((?:\\.|[^=:\s\\])*)\s*[=:\s]\s*(.*)$/.exec(line);
    if (m) map.set(decode(m[1] ?? ''), decode(m[2] ?? ''));
  }
  return map;
}

describe('server.properties as Kafka reads it (ISO-8859-1)', () => {
  it('keeps a data dir with non-ASCII characters intact (/home/zoë, CJK, emoji)', () => {
    const logDir = '/home/zoë/流水/🚀 data/kafka';
    const text = renderServerProperties({ port: 1, controllerPort: 2, logDir });
    expect(Buffer.from(text, 'utf8').length).toBe(text.length); // pure ASCII
    const props = loadJavaProperties(Buffer.from(text, 'utf8'));
    expect(props.get('log.dirs')).toBe(logDir);
    expect(props.get('listeners')).toBe('PLAINTEXT://127.0.0.1:1,CONTROLLER://127.0.0.1:2');
  });

  it('round-trips backslashes, line breaks, a leading space and separators in keys', () => {
    for (const [key, value] of [
      ['a=b:c d#!', ' x\\y\nz\tq=:#!'],
      ['k', 'C:\\kafka\\é'],
    ] as const) {
      const line = `${escapeProperty(key, 'key')}=${escapeProperty(value)}\n`;
      expect(loadJavaProperties(Buffer.from(line, 'utf8')).get(key)).toBe(value);
    }
  });
});

describe('kafka helpers', () => {
  it('generates cluster ids in the format StorageTool expects', () => {
    for (let i = 0; i < 50; i++) {
      const id = generateClusterId();
      expect(id).toMatch(/^[A-Za-z0-9_][A-Za-z0-9_-]{21}$/);
    }
  });

  it('renders a pom with the broker and logging dependencies', () => {
    const pom = renderKafkaPom('4.3.1');
    expect(pom).toContain('<artifactId>kafka_2.13</artifactId><version>4.3.1</version>');
    expect(pom).toContain('<artifactId>log4j-slf4j2-impl</artifactId>');
    expect(pom).toContain('<artifactId>maven-dependency-plugin</artifactId>');
  });

  it('renders a log4j2 XML config', () => {
    expect(renderLog4j2Xml()).toMatch(/<Root level="warn">/);
  });
});

describe('registry and redis helpers', () => {
  it('builds the Maven Central URL of the app archive', () => {
    expect(apicurioUrl('https://repo1.maven.org/maven2', '3.0.9')).toBe(
      'https://repo1.maven.org/maven2/io/apicurio/apicurio-registry-app/3.0.9/apicurio-registry-app-3.0.9-all.tar.gz',
    );
  });

  it('binds the registry to loopback without a management port', () => {
    const props = registrySystemProperties(18081);
    expect(props).toContain('-Dquarkus.http.port=18081');
    // file-backed H2: schemas and their ids survive a restart. The path is relative to the registry's
    // folder (its working directory): H2 ends the path at a `;`, which a state dir may hold.
    expect(props).toContain(
      '-Dapicurio.datasource.url=jdbc:h2:file:./data/registry;DB_CLOSE_ON_EXIT=FALSE;WRITE_DELAY=0',
    );
    expect(props).toContain('-Dquarkus.http.host=127.0.0.1');
    expect(props).toContain('-Dquarkus.management.enabled=false');
  });

  it('finds the runnable jar in both archive layouts', () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'driftline-apicurio-'));
    try {
      const a = path.join(root, 'a');
      fs.mkdirSync(path.join(a, 'lib'), { recursive: true });
      fs.writeFileSync(path.join(a, 'apicurio-registry-app-3.0.9-runner.jar'), '');
      expect(findApicurioJar(a, '3.0.9')).toBe('apicurio-registry-app-3.0.9-runner.jar');

      const b = path.join(root, 'b');
      fs.mkdirSync(path.join(b, 'apicurio-registry-app-3.3.0', 'lib'), { recursive: true });
      fs.writeFileSync(path.join(b, 'apicurio-registry-app-3.3.0', 'quarkus-run.jar'), '');
      expect(findApicurioJar(b, '3.3.0')).toBe(path.join('apicurio-registry-app-3.3.0', 'quarkus-run.jar'));

      const c = path.join(root, 'c');
      fs.mkdirSync(c);
      expect(findApicurioJar(c, '3.0.9')).toBeUndefined();
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  });

  it('starts redis without persistence on loopback', () => {
    const args = redisArgs(16379, '/tmp/r');
    expect(args.join(' ')).toBe('--port 16379 --bind 127.0.0.1 --save  --appendonly no --dir /tmp/r --daemonize no');
  });

  it('starts a durable redis with the documented AOF settings', () => {
    const args = redisArgs(16379, '/tmp/r', true).join(' ');
    expect(args).toContain('--appendonly yes --appendfsync everysec --maxmemory-policy noeviction');
  });

  it('parses java -version output', () => {
    expect(parseJavaMajor('openjdk version "17.0.15" 2025-04-15')).toBe(17);
    expect(parseJavaMajor('java version "1.8.0_392"')).toBe(8);
    expect(parseJavaMajor('openjdk version "21" 2023-09-19')).toBe(21);
    expect(parseJavaMajor('nonsense')).toBeUndefined();
  });
});
