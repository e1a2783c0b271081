// The Data API's errors, by AWS's names and status codes, so SDKs raise the
// exception classes users catch.
// https://docs.aws.amazon.com/rdsdataservice/latest/APIReference/CommonErrors.html

export type DataApiErrorType =
  | 'AccessDeniedException'
  | 'BadRequestException'
  | 'DatabaseErrorException'
  | 'DatabaseNotFoundException'
  | 'DatabaseResumingException'
  | 'DatabaseUnavailableException'
  | 'HttpEndpointNotEnabledException'
  | 'InternalServerErrorException'
  | 'InvalidSignatureException'
  | 'MissingAuthenticationTokenException'
  | 'NotFoundException'
  | 'SecretsErrorException'
  | 'StatementTimeoutException'
  | 'TransactionNotFoundException'
  | 'UnrecognizedClientException'
  | 'UnsupportedResultException'
  | 'SerializationException';

const STATUS: Record<DataApiErrorType, number> = {
  AccessDeniedException: 403,
  BadRequestException: 400,
  DatabaseErrorException: 400,
  DatabaseNotFoundException: 404,
  DatabaseResumingException: 400,
  DatabaseUnavailableException: 504,
  HttpEndpointNotEnabledException: 400,
  InternalServerErrorException: 500,
  InvalidSignatureException: 403,
  MissingAuthenticationTokenException: 403,
  NotFoundException: 404,
  SecretsErrorException: 400,
  StatementTimeoutException: 400,
  TransactionNotFoundException: 404,
  UnrecognizedClientException: 403,
  UnsupportedResultException: 400,
  SerializationException: 400,
};

export class DataApiError extends Error {
  override readonly name = 'DataApiError';
  constructor(
    readonly type: DataApiErrorType,
    message: string,
  ) {
    super(message);
  }

  get status(): number {
    return STATUS[this.type];
  }
}
