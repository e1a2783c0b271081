// What the workloads record: every operation with its invocation,
// completion and outcome, as a Jepsen history has them. An outcome is `ok`
// (the database acknowledged it), `fail` (it certainly did not happen: an
// error before the commit was sent, or one PostgreSQL reports as a rollback)
// or `unknown` (the connection died or timed out with the commit in flight:
// it may or may not have happened). Pure data; no I/O.

export type Outcome = 'ok' | 'fail' | 'unknown';

/** Which writer acknowledged a write: its incarnation (postmaster start time) and storage term. */
export interface WriterTag {
  readonly incarnation: string;
  readonly term: string;
  readonly timeline: string;
}

interface OpBase {
  /** The client (logical process) that ran it. */
  readonly process: number;
  /** ms since the run started, when the client sent it and when it heard back. */
  readonly invokeMs: number;
  readonly completeMs: number;
  readonly outcome: Outcome;
  /** The acknowledging writer, for acknowledged writes. */
  readonly writer?: WriterTag;
  readonly error?: string;
}

/** list-append: append `value` (unique in the run) to list `key`. */
export interface AppendOp extends OpBase {
  readonly f: 'append';
  readonly key: number;
  readonly value: number;
}

/** list-append: read list `key` (values in commit order); `values` only when ok. */
export interface ReadListOp extends OpBase {
  readonly f: 'read-list';
  readonly key: number;
  readonly values?: readonly number[];
}

/** register: set `key` to `value` (unique in the run). */
export interface WriteRegisterOp extends OpBase {
  readonly f: 'write';
  readonly key: number;
  readonly value: number;
}

/** register: read `key`; `value` null when never written, only when ok. */
export interface ReadRegisterOp extends OpBase {
  readonly f: 'read';
  readonly key: number;
  readonly value?: number | null;
}

/** bank: move `amount` from one account to another, in one transaction. */
export interface TransferOp extends OpBase {
  readonly f: 'transfer';
  readonly from: number;
  readonly to: number;
  readonly amount: number;
}

/** bank: read every balance in one transaction; `balances` only when ok. */
export interface ReadBankOp extends OpBase {
  readonly f: 'read-bank';
  readonly balances?: readonly number[];
}

export type Op = AppendOp | ReadListOp | WriteRegisterOp | ReadRegisterOp | TransferOp | ReadBankOp;

export type History = readonly Op[];

/** Writes: the operations that change data. */
export function isWrite(op: Op): op is AppendOp | WriteRegisterOp | TransferOp {
  return op.f === 'append' || op.f === 'write' || op.f === 'transfer';
}
