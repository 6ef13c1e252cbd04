/**
 * NBD wire constants (fixed newstyle negotiation, simple and structured replies), named as the
 * protocol document names them so the code can be read beside it. All integers are big-endian.
 */

/** "NBDMAGIC": the first 8 bytes the server sends. */
export const INIT_PASSWD = 0x4e42444d41474943n;
/** "IHAVEOPT": follows INIT_PASSWD in newstyle negotiation and starts every client option. */
export const IHAVEOPT = 0x49484156454f5054n;
export const OPTION_REPLY_MAGIC = 0x3e889045565a9n;
export const REQUEST_MAGIC = 0x25609513;
export const SIMPLE_REPLY_MAGIC = 0x67446698;
export const STRUCTURED_REPLY_MAGIC = 0x668e33ef;

/** Handshake flags (server -> client, 16 bits). */
export const FLAG_FIXED_NEWSTYLE = 1 << 0;
export const FLAG_NO_ZEROES = 1 << 1;

/** Client flags (client -> server, 32 bits). */
export const FLAG_C_FIXED_NEWSTYLE = 1 << 0;
export const FLAG_C_NO_ZEROES = 1 << 1;
export const KNOWN_CLIENT_FLAGS = FLAG_C_FIXED_NEWSTYLE | FLAG_C_NO_ZEROES;

/** Transmission flags (16 bits, per export). */
export const TFLAG_HAS_FLAGS = 1 << 0;
export const TFLAG_READ_ONLY = 1 << 1;
export const TFLAG_SEND_FLUSH = 1 << 2;
export const TFLAG_SEND_FUA = 1 << 3;
export const TFLAG_SEND_TRIM = 1 << 5;
export const TFLAG_SEND_WRITE_ZEROES = 1 << 6;
export const TFLAG_SEND_DF = 1 << 7;
export const TFLAG_CAN_MULTI_CONN = 1 << 8;
export const TFLAG_SEND_FAST_ZERO = 1 << 11;

export const Option = {
  EXPORT_NAME: 1,
  ABORT: 2,
  LIST: 3,
  STARTTLS: 5,
  INFO: 6,
  GO: 7,
  STRUCTURED_REPLY: 8,
  LIST_META_CONTEXT: 9,
  SET_META_CONTEXT: 10,
} as const;

export const Reply = {
  ACK: 1,
  SERVER: 2,
  INFO: 3,
  META_CONTEXT: 4,
  ERR_UNSUP: 0x80000001,
  ERR_POLICY: 0x80000002,
  ERR_INVALID: 0x80000003,
  ERR_UNKNOWN: 0x80000006,
  ERR_SHUTDOWN: 0x80000007,
} as const;

export const Info = {
  EXPORT: 0,
  NAME: 1,
  DESCRIPTION: 2,
  BLOCK_SIZE: 3,
} as const;

export const Command = {
  READ: 0,
  WRITE: 1,
  DISC: 2,
  FLUSH: 3,
  TRIM: 4,
  CACHE: 5,
  WRITE_ZEROES: 6,
  BLOCK_STATUS: 7,
} as const;

export const CMD_FLAG_FUA = 1 << 0;
export const CMD_FLAG_NO_HOLE = 1 << 1;
export const CMD_FLAG_DF = 1 << 2;
export const CMD_FLAG_REQ_ONE = 1 << 3;
export const CMD_FLAG_FAST_ZERO = 1 << 4;

export const REPLY_FLAG_DONE = 1 << 0;

export const ReplyType = {
  NONE: 0,
  OFFSET_DATA: 1,
  BLOCK_STATUS: 5,
  ERROR: 0x8001,
} as const;

/** The only metadata context this server knows. */
export const BASE_ALLOCATION = 'base:allocation';
export const BASE_ALLOCATION_ID = 1;

/** Error values allowed on the wire (the protocol fixes these numbers, whatever the host's errno). */
export const Errno = {
  EPERM: 1,
  EIO: 5,
  ENOMEM: 12,
  EINVAL: 22,
  ENOSPC: 28,
  EOVERFLOW: 75,
  ENOTSUP: 95,
  ESHUTDOWN: 108,
} as const;
export type Errno = (typeof Errno)[keyof typeof Errno];

export const GREETING_SIZE = 18;
export const OPTION_HEADER_SIZE = 16;
export const REQUEST_SIZE = 28;
export const SIMPLE_REPLY_SIZE = 16;
export const STRUCTURED_HEADER_SIZE = 20;
/** Zero padding after NBD_OPT_EXPORT_NAME's reply, unless both sides agreed to NO_ZEROES. */
export const EXPORT_NAME_PADDING = 124;
/** Strings (export names, queries) the protocol allows at most. */
export const MAX_STRING = 4096;
