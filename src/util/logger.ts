// Structured logs: one JSON object per line, with time, level, component and
// message, plus fields. Secrets are never passed in.
import fs from 'node:fs';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface LogSink {
  write(line: string): void;
}

export class Logger {
  constructor(
    private readonly sinks: readonly LogSink[],
    private readonly component = 'borealis',
    private readonly levelMin: LogLevel = 'info',
  ) {}

  child(component: string): Logger {
    return new Logger(this.sinks, component, this.levelMin);
  }

  debug(msg: string, fields?: Record<string, unknown>): void {
    this.log('debug', msg, fields);
  }
  info(msg: string, fields?: Record<string, unknown>): void {
    this.log('info', msg, fields);
  }
  warn(msg: string, fields?: Record<string, unknown>): void {
    this.log('warn', msg, fields);
  }
  error(msg: string, fields?: Record<string, unknown>): void {
    this.log('error', msg, fields);
  }

  private log(level: LogLevel, msg: string, fields?: Record<string, unknown>): void {
    if (RANK[level] < RANK[this.levelMin]) return;
    const line = JSON.stringify({ time: new Date().toISOString(), level, component: this.component, msg, ...fields }) + '\n';
    for (const sink of this.sinks) sink.write(line);
  }
}

export function fileSink(file: string): LogSink {
  const fd = fs.openSync(file, 'a', 0o640);
  return { write: (line) => fs.writeSync(fd, line) };
}

export const silentLogger = new Logger([]);
