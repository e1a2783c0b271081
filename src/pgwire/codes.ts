// Message codes and magic numbers of the PostgreSQL frontend/backend protocol 3.0.
// https://www.postgresql.org/docs/17/protocol-message-formats.html

/** Protocol version 3.0 as sent in a StartupMessage. */
export const PROTOCOL_VERSION_3 = 196608; // 3 << 16
/** Request codes carried in the protocol-version slot of a startup packet. */
export const SSL_REQUEST_CODE = 80877103; // 1234 << 16 | 5679
export const GSSENC_REQUEST_CODE = 80877104; // 1234 << 16 | 5680
export const CANCEL_REQUEST_CODE = 80877102; // 1234 << 16 | 5678

/** Backend message type bytes. */
export const Backend = {
  Authentication: 0x52, // 'R'
  BackendKeyData: 0x4b, // 'K'
  ErrorResponse: 0x45, // 'E'
  NoticeResponse: 0x4e, // 'N'
  ParameterStatus: 0x53, // 'S'
  ReadyForQuery: 0x5a, // 'Z'
} as const;

/** Frontend message type bytes (after the startup packet). */
export const Frontend = {
  Password: 0x70, // 'p' (also SASLInitialResponse and SASLResponse)
  Terminate: 0x58, // 'X'
  Query: 0x51, // 'Q'
} as const;

/** Authentication request sub-codes (the int32 after an 'R'). */
export const Auth = {
  Ok: 0,
  CleartextPassword: 3,
  MD5Password: 5,
  SASL: 10,
  SASLContinue: 11,
  SASLFinal: 12,
} as const;

/** Error and notice field codes. */
export const ErrorField = {
  Severity: 0x53, // 'S' (localized)
  SeverityNonLocalized: 0x56, // 'V'
  Code: 0x43, // 'C'
  Message: 0x4d, // 'M'
  Detail: 0x44, // 'D'
  Hint: 0x48, // 'H'
} as const;
