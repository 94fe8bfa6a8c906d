/*
 * signature.c
 *		Keyed HMAC signatures (SHA-256 or SHA-1; the key as UTF-8 bytes or
 *		base64-decoded; the signature in hex or base64), with each key's
 *		inner and outer hash states computed once and cached per backend,
 *		and their constant-time comparison.  OpenSSL computes every hash.
 *		Each API builds the string it signs.
 *
 * HMAC(K, m) = H((K' ^ opad) || H((K' ^ ipad) || m)), K' the key padded to
 * the hash's block (hashed first if longer).  The two keyed prefixes are
 * one block each: their hash states are what a key costs, so they are
 * kept, and each message copies them.  OpenSSL 3's EVP_MAC and EVP digest
 * contexts copy, cleanse and free provider contexts per message, which
 * cost more than the hashing itself.
 */
#include "core/core.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

#include "common/base64.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "mb/pg_wchar.h"
#include "port/pg_bswap.h"
#include "utils/memutils.h"

/*
 * Keys cached at once: notifications of several merchants are verified in
 * one scan, interleaved, and each key costs two hash blocks to set up.
 */
#define SIGNATURE_KEYS_CACHED	8

/* The longest hash block OpenSSL has (SHA-512's); ours are 64 bytes */
#define MAX_BLOCK	128

/* A SHA state, copied as a plain struct */
typedef union ShaState
{
	SHA256_CTX	sha256;
	SHA_CTX		sha1;
} ShaState;

struct SignatureKey
{
	SignatureHash hash;
	SignatureKeyEncoding encoding;
	char	   *text;			/* the key as given, in TopMemoryContext */
	int			text_len;
	ShaState	inner;			/* state after hashing K' ^ ipad */
	ShaState	outer;			/* state after hashing K' ^ opad */
	int			mac_len;
	uint64		last_used;		/* for LRU eviction; 0 = free slot */
};

static SignatureKey keys[SIGNATURE_KEYS_CACHED];
static SignatureKey *last_key = NULL;	/* the common case: the same key again */
static uint64 use_clock = 0;

/* Raise an error about OpenSSL's hashing */
static void
hash_failed(const char *what)
{
	ereport(ERROR,
			(errcode(ERRCODE_SYSTEM_ERROR),
			 errmsg("OpenSSL HMAC failed: %s", what)));
}

/* The message digest of a hash, fetched once per backend */
static const EVP_MD *
hash_md(SignatureHash hash)
{
	static EVP_MD *sha256 = NULL;
	static EVP_MD *sha1 = NULL;
	EVP_MD	  **md = hash == SIGNATURE_SHA1 ? &sha1 : &sha256;

	if (*md == NULL)
	{
		*md = EVP_MD_fetch(NULL, hash == SIGNATURE_SHA1 ? "SHA1" : "SHA256", NULL);
		if (*md == NULL)
			hash_failed("no SHA implementation");
	}
	return *md;
}

/* Forget a cached key: its text and keyed states are wiped */
static void
forget_key(SignatureKey *key)
{
	if (key->text != NULL)
	{
		explicit_bzero(key->text, key->text_len);
		pfree(key->text);
	}
	if (last_key == key)
		last_key = NULL;
	explicit_bzero(key, sizeof(*key));
}

/*
 * The key's bytes as signed with: the UTF-8 bytes of the server-encoded
 * text, or its base64 decoding; palloc'd, *len set.  Never shows the key.
 */
static unsigned char *
key_bytes(SignatureKeyEncoding encoding, const char *text, int text_len, int *len)
{
	unsigned char *bytes;

	if (encoding == SIGNATURE_KEY_BASE64)
	{
		int			max_len = pg_b64_dec_len(text_len);

		bytes = palloc(max_len + 1);
		*len = pg_b64_decode(text, text_len, (char *) bytes, max_len);
		if (*len < 0)
		{
			explicit_bzero(bytes, max_len);
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("the secret key is not valid base64")));
		}
	}
	else if (GetDatabaseEncoding() != PG_UTF8)
	{
		/* QIWI keys with the UTF-8 bytes; most databases already hold them */
		char	   *copy;

		/* SQL_ASCII text is taken as UTF-8: check it here, whose error shows no byte */
		if (GetDatabaseEncoding() == PG_SQL_ASCII &&
			!pg_verify_mbstr(PG_UTF8, text, text_len, true))
			ereport(ERROR,
					(errcode(ERRCODE_CHARACTER_NOT_IN_REPERTOIRE),
					 errmsg("the secret key is not valid UTF-8")));
		copy = pnstrdup(text, text_len);

		bytes = (unsigned char *) pg_server_to_any(copy, text_len, PG_UTF8);
		*len = strlen((char *) bytes);
		if ((char *) bytes != copy)
			explicit_bzero(copy, text_len);
	}
	else
	{
		bytes = palloc(text_len + 1);
		memcpy(bytes, text, text_len);
		*len = text_len;
	}
	return bytes;
}

/*
 * Continue a SHA state with data (starting it first if start) and, unless
 * out is NULL, finish it into out.  The one user of OpenSSL's low-level SHA
 * functions, deprecated in 3.0: a keyed state copied as a plain struct
 * costs nothing, while EVP_MD_CTX_copy_ex frees, allocates and cleanses
 * the provider's context twice a message.  Measured on the benchmark's
 * notifications: 703 ns a row with EVP_MD_CTX_copy_ex, 595 ns with this.
 */
static bool
sha_continue(SignatureHash hash, ShaState *state, bool start, const void *data, size_t len,
			 unsigned char *out)
{
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
	if (hash == SIGNATURE_SHA1)
		return (!start || SHA1_Init(&state->sha1)) &&
			SHA1_Update(&state->sha1, data, len) &&
			(out == NULL || SHA1_Final(out, &state->sha1));
	return (!start || SHA256_Init(&state->sha256)) &&
		SHA256_Update(&state->sha256, data, len) &&
		(out == NULL || SHA256_Final(out, &state->sha256));
#pragma GCC diagnostic pop
}

/* Start a keyed state: hash one block of the key padded and XORed with pad */
static bool
keyed_state(SignatureHash hash, ShaState *state, const unsigned char *padded, int block,
			unsigned char pad)
{
	unsigned char xored[MAX_BLOCK];
	bool		ok;

	for (int i = 0; i < block; i++)
		xored[i] = padded[i] ^ pad;
	ok = sha_continue(hash, state, true, xored, block, NULL);
	explicit_bzero(xored, block);
	return ok;
}

/* Compute a key's inner and outer states into an empty slot */
static void
set_up_key(SignatureKey *slot, SignatureHash hash, SignatureKeyEncoding encoding,
		   const char *text, int text_len)
{
	const EVP_MD *md = hash_md(hash);
	int			block = EVP_MD_get_block_size(md);
	unsigned char padded[MAX_BLOCK];
	unsigned char *bytes;
	int			len;
	bool		ok = true;

	if (block <= 0 || block > MAX_BLOCK)
		hash_failed("unexpected block size");
	bytes = key_bytes(encoding, text, text_len, &len);
	if (len == 0)				/* base64 of nothing */
	{
		pfree(bytes);
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("no secret key to sign or verify with")));
	}
	/* before the key is spread further: forget_key wipes what is in the slot */
	slot->text = MemoryContextAlloc(TopMemoryContext, text_len + 1);
	memcpy(slot->text, text, text_len);
	slot->text_len = text_len;

	/* K': a key longer than a block is hashed first, then zero-padded */
	memset(padded, 0, sizeof(padded));
	if (len > block)
	{
		unsigned int hashed_len;

		ok = EVP_Digest(bytes, len, padded, &hashed_len, md, NULL);
	}
	else
		memcpy(padded, bytes, len);
	explicit_bzero(bytes, len);
	pfree(bytes);

	ok = ok &&
		keyed_state(hash, &slot->inner, padded, block, 0x36) &&
		keyed_state(hash, &slot->outer, padded, block, 0x5c);
	explicit_bzero(padded, sizeof(padded));
	if (!ok)
	{
		forget_key(slot);
		hash_failed("cannot key the hash");
	}

	slot->hash = hash;
	slot->encoding = encoding;
	slot->mac_len = EVP_MD_get_size(md);
}

/* Is this cached key the one asked for? */
static bool
key_is(SignatureKey *key, SignatureHash hash, SignatureKeyEncoding encoding,
	   const char *text, int len)
{
	return key->last_used != 0 && key->hash == hash && key->encoding == encoding &&
		key->text_len == len && CRYPTO_memcmp(key->text, text, len) == 0;
}

/*
 * A keyed signer for key (server-encoded text; UTF8 = its UTF-8 bytes,
 * BASE64 = decoded), from the per-backend cache; the least recently used
 * key makes room.  The pointer is the cache's: use it before asking for
 * other keys.
 */
SignatureKey *
signature_key(SignatureHash hash, SignatureKeyEncoding encoding, const char *key, int len)
{
	SignatureKey *slot = NULL;

	if (len == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("no secret key to sign or verify with")));

	if (last_key != NULL && key_is(last_key, hash, encoding, key, len))
		slot = last_key;
	for (int i = 0; slot == NULL && i < SIGNATURE_KEYS_CACHED; i++)
		if (key_is(&keys[i], hash, encoding, key, len))
			slot = &keys[i];
	if (slot == NULL)
	{
		slot = &keys[0];
		for (int i = 1; i < SIGNATURE_KEYS_CACHED; i++)
			if (keys[i].last_used < slot->last_used)
				slot = &keys[i];
		forget_key(slot);
		set_up_key(slot, hash, encoding, key, len);
	}
	slot->last_used = ++use_clock;
	last_key = slot;
	return slot;
}

/* HMAC of message under key into mac (EVP_MAX_MD_SIZE bytes); its length */
static int
keyed_hash(SignatureKey *key, const char *message, size_t len, unsigned char *mac)
{
	ShaState	work = key->inner;
	unsigned char inner[EVP_MAX_MD_SIZE];

	if (!sha_continue(key->hash, &work, false, message, len, inner))
		hash_failed("cannot compute the MAC");
	work = key->outer;
	if (!sha_continue(key->hash, &work, false, inner, key->mac_len, mac))
		hash_failed("cannot compute the MAC");
	return key->mac_len;
}

/* Encode a MAC as lowercase hex or base64 into out; the encoded length */
static int
encode_mac(SignatureOutput output, const unsigned char *mac, int mac_len, char *out, int out_size)
{
	static const char digits[] = "0123456789abcdef";

	if (output == SIGNATURE_BASE64)
	{
		int			len = pg_b64_encode((const char *) mac, mac_len, out, out_size);

		if (len < 0)
			hash_failed("cannot encode the MAC");
		out[len] = '\0';
		return len;
	}
	for (int i = 0; i < mac_len; i++)
	{
		out[2 * i] = digits[mac[i] >> 4];
		out[2 * i + 1] = digits[mac[i] & 0x0f];
	}
	out[2 * mac_len] = '\0';
	return 2 * mac_len;
}

/* Room for a MAC's hex or base64 and a terminator */
#define ENCODED_MAC_SIZE (2 * EVP_MAX_MD_SIZE + 1)

/* The encoded signature (hex lowercase, or base64) of message, palloc'd */
char *
signature_sign(SignatureKey *key, SignatureOutput output, const char *message, size_t len)
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	int			mac_len = keyed_hash(key, message, len, mac);
	char	   *encoded = palloc(ENCODED_MAC_SIZE);

	encode_mac(output, mac, mac_len, encoded, ENCODED_MAC_SIZE);
	return encoded;
}

/*
 * Eight lowercase hex digits of four MAC bytes, most significant byte first
 * (the first digit in the top byte): each byte's nibbles are spread into
 * two bytes, and each nibble n becomes '0' + n, plus 'a' - '0' - 10 from 10
 * up (bit 4 of n + 6).  No byte carries into the next.
 */
static inline uint64
hex_digits(const unsigned char *mac)
{
	uint32		bytes;
	uint64		x;

	memcpy(&bytes, mac, sizeof(bytes));
	x = pg_ntoh32(bytes);
	x = (x | x << 16) & UINT64CONST(0x0000ffff0000ffff);
	x = (x | x << 8) & UINT64CONST(0x00ff00ff00ff00ff);
	x = (x | x << 4) & UINT64CONST(0x0f0f0f0f0f0f0f0f);
	return x + UINT64CONST(0x3030303030303030) +
		(((x + UINT64CONST(0x0606060606060606)) >> 4) & UINT64CONST(0x0101010101010101)) * 0x27;
}

/*
 * Is given (hex in either case, or base64) the signature of message?
 * Compared in constant time wherever they differ.  Hex is compared with
 * the MAC's lowercase hex eight digits at a time: a given byte matches
 * digit e when (byte | 0x20) == e, which lets 0x10-0x19 pass for '0'-'9'
 * too, so those (the only such bytes with neither 0x20 nor 0x40 set) are
 * refused.  Decoding the given hex byte by byte and comparing the bytes,
 * or encoding the MAC byte by byte, cost four times as many instructions.
 */
bool
signature_verify(SignatureKey *key, SignatureOutput output, const char *message, size_t len,
				 const char *given, int given_len)
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	int			mac_len = keyed_hash(key, message, len, mac);
	uint64		differ = 0;
	uint64		not_hex = 0;

	if (output == SIGNATURE_BASE64)
	{
		char		expected[ENCODED_MAC_SIZE];
		int			expected_len = encode_mac(output, mac, mac_len, expected, sizeof(expected));

		return given_len == expected_len &&
			CRYPTO_memcmp(given, expected, expected_len) == 0;
	}
	if (given_len != 2 * mac_len)
		return false;
	/* SHA-1's and SHA-256's MACs are 20 and 32 bytes: whole words of hex */
	Assert(mac_len % 4 == 0);
	for (int i = 0; i < mac_len; i += 4)
	{
		uint64		g;

		memcpy(&g, given + 2 * i, sizeof(g));
		g = pg_ntoh64(g);
		differ |= (g | UINT64CONST(0x2020202020202020)) ^ hex_digits(mac + i);
		/* bit 7 of a byte set if neither its 0x20 nor its 0x40 is */
		not_hex |= ~((g & UINT64CONST(0x6060606060606060)) + UINT64CONST(0x7f7f7f7f7f7f7f7f)) &
			UINT64CONST(0x8080808080808080);
	}
	return (differ | not_hex) == 0;
}

/* Append text to a string to sign, as UTF-8 */
void
signature_append_utf8(StringInfo buf, const char *value, int len)
{
	if (GetDatabaseEncoding() == PG_UTF8)
		appendBinaryStringInfo(buf, value, len);
	else
		appendStringInfoString(buf, pg_server_to_any(pnstrdup(value, len), len, PG_UTF8));
}

/* ---------- the strings notifications sign: fields joined by '|' ---------- */

/*
 * Append len bytes and a '|' to the signed string.  Inline, without the
 * terminating zero: the fields are a few bytes each, and the calls of
 * appendBinaryStringInfo and appendStringInfoChar cost a tenth of a check.
 */
static inline void
append_piece(StringInfo buf, const char *s, int len)
{
	if (buf->len + len + 1 >= buf->maxlen)
		enlargeStringInfo(buf, len + 1);
	memcpy(buf->data + buf->len, s, len);
	buf->data[buf->len + len] = '|';
	buf->len += len + 1;
}

/*
 * Append len bytes and a '|' to the signed string unless they contain a
 * '|' (then false): copied and checked in one pass
 */
static inline bool
append_piece_without_bar(StringInfo buf, const char *s, int len)
{
	char	   *out;
	bool		bar = false;

	if (buf->len + len + 1 >= buf->maxlen)
		enlargeStringInfo(buf, len + 1);
	out = buf->data + buf->len;
	for (int i = 0; i < len; i++)
	{
		out[i] = s[i];
		bar |= s[i] == '|';
	}
	out[len] = '|';
	buf->len += len + 1;
	return !bar;
}

/* Append a signed field v (NULL: missing): a string (or, for ids, a number) */
bool
signature_append_field(StringInfo buf, JsonbValue *v, bool number_ok, const char *path,
					   char **problem)
{
	bool		unambiguous;

	if (v != NULL && v->type == jbvString)
	{
		/* bytes as they are stored: in a UTF8 database the bytes signed */
		if (GetDatabaseEncoding() == PG_UTF8)
			unambiguous = append_piece_without_bar(buf, v->val.string.val, v->val.string.len);
		else if ((unambiguous = memchr(v->val.string.val, '|', v->val.string.len) == NULL))
		{
			signature_append_utf8(buf, v->val.string.val, v->val.string.len);
			appendStringInfoChar(buf, '|');
		}

		/*
		 * The signed string joins its fields with '|' and cannot tell x|1 + y
		 * from x + 1|y: a field holding one could be another notification's.
		 */
		if (!unambiguous)
		{
			*problem = psprintf("%s contains \"|\", which makes the signed string ambiguous", path);
			return false;
		}
	}
	else if (v != NULL && v->type == jbvNumeric && number_ok)
	{
		char	   *number = DatumGetCString(DirectFunctionCall1(numeric_out,
																 NumericGetDatum(v->val.numeric)));

		append_piece(buf, number, strlen(number));
	}
	else
	{
		*problem = psprintf(v == NULL ? "%s is missing" : "%s is not a string", path);
		return false;
	}
	return true;
}

/*
 * Is this amount string already written the way QIWI signs it, digits
 * with exactly two decimals and no leading zero (as real notifications
 * send it)?  Then it is signed as sent, whatever its value: the value is
 * judged when the notification is applied.
 */
static bool
amount_is_normal_form(const char *s, int len)
{
	int			point = len - 3;

	if (len < 4 || s[point] != '.' || (s[0] == '0' && point != 1))
		return false;
	for (int i = 0; i < len; i++)
		if (i != point && (s[i] < '0' || s[i] > '9'))
			return false;
	return true;
}

/*
 * Append an amount written plainly in QIWI's range (above 0, at most
 * 999999.99, at most two decimals: "1", "10.5", "0.01", "999999.99") with
 * exactly two decimals, as QIWI signs it, and a '|'; false, appending
 * nothing, for anything else, which qiwi_json_amount then judges the same
 * way.  Real notifications send "1.00" or 1.5; the numeric round trip
 * costs more than the HMAC.
 */
static bool
append_plain_amount(StringInfo buf, const char *s, int len)
{
	int			digits = 0;
	int			decimals;

	while (digits < len && s[digits] >= '0' && s[digits] <= '9')
		digits++;
	decimals = digits < len ? len - digits - 1 : 0;
	/* no leading zero but in 0.xx; at most 999999 */
	if (digits == 0 || digits > 6 || (s[0] == '0' && digits > 1))
		return false;
	/* nothing but ".d" or ".dd" after the digits */
	if (digits < len && (s[digits] != '.' || decimals < 1 || decimals > 2))
		return false;
	for (int i = digits + 1; i < len; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	/* zero is out of range */
	if (s[0] == '0' && (decimals == 0 || (s[2] == '0' && (decimals == 1 || s[3] == '0'))))
		return false;

	appendBinaryStringInfo(buf, s, len);
	append_piece(buf, decimals == 0 ? ".00" : "0", decimals == 0 ? 3 : 2 - decimals);
	return true;
}


/*
 * Append an amount and a '|' as QIWI signs it: exactly two decimals, never
 * rounded.  value is the "value" member of the amount object (NULL:
 * missing); forms QIWI sends ("10.50", 10.5) are written without numeric,
 * and anything else is judged by qiwi_json_amount on parent (the object
 * holding "amount").  False with *problem when it is not a money amount.
 */
bool
signature_append_amount(StringInfo buf, JsonbValue *value, JsonbContainer *parent,
						const char *max_amount, char **problem)
{
	bool		plain;

	if (value != NULL && value->type == jbvString &&
		amount_is_normal_form(value->val.string.val, value->val.string.len))
	{
		append_piece(buf, value->val.string.val, value->val.string.len);
		plain = true;
	}
	else if (value != NULL && value->type == jbvString)
		plain = append_plain_amount(buf, value->val.string.val, value->val.string.len);
	else if (value != NULL && value->type == jbvNumeric)
	{
		char	   *number = DatumGetCString(DirectFunctionCall1(numeric_out,
																 NumericGetDatum(value->val.numeric)));

		plain = append_plain_amount(buf, number, strlen(number));
	}
	else
		plain = false;
	if (!plain)
	{
		Numeric		cents;
		char	   *currency;
		char	   *formatted;

		if (!qiwi_json_amount(parent, max_amount, &cents, &currency, problem))
			return false;
		formatted = qiwi_format_amount(cents);
		append_piece(buf, formatted, strlen(formatted));
	}
	return true;
}

/* End a signed string: no separator after its last field */
void
signature_end_message(StringInfo buf)
{
	buf->data[--buf->len] = '\0';
}

/* A buffer for the signed string, reused from row to row */
StringInfo
signature_message_buffer(void)
{
	static StringInfo buffer = NULL;

	if (buffer == NULL || buffer->maxlen > 64 * 1024)
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		if (buffer != NULL)
		{
			pfree(buffer->data);
			pfree(buffer);
		}
		buffer = makeStringInfo();
		MemoryContextSwitchTo(old);
	}
	resetStringInfo(buffer);
	return buffer;
}

/* ---------- strings whose fields the message names: "sum.amount,type" ---------- */

/* Longer lists are read for the row, not kept: one comes with each message */
#define SIGNED_PATHS_MAX_CACHED	1024

/* A key to look up: list + start, len bytes, at depth in its path */
typedef struct SignedKey
{
	int			start;
	int			len;
	int			depth;			/* 0: a key of the object itself */
	int			field;			/* a field's last key: where its name starts; else -1 */
} SignedKey;

/* A list of paths read once: its text and the keys to look up, in order */
struct SignedPaths
{
	char	   *text;
	int			text_len;
	int			depth;			/* the most keys in a path */
	int			nkeys;
	SignedKey	keys[FLEXIBLE_ARRAY_MEMBER];
};

static SignedPaths *cached_paths = NULL;

/*
 * Read a list "a.b,c": fields split at ',', keys at '.', empty names kept
 * (they are missing).  The keys a field shares with the one before ("sum"
 * of "sum.currency,sum.amount") are looked up once: they are left out.
 */
static SignedPaths *
read_paths(const char *list, int len, MemoryContext context)
{
	int			most = 1;
	SignedPaths *paths;

	for (int i = 0; i < len; i++)
		most += list[i] == ',' || list[i] == '.';
	paths = MemoryContextAlloc(context, offsetof(SignedPaths, keys) + most * sizeof(SignedKey) + len + 1);
	paths->text = (char *) &paths->keys[most];
	memcpy(paths->text, list, len);
	paths->text[len] = '\0';
	paths->text_len = len;
	paths->depth = paths->nkeys = 0;
	for (int field = 0, before = 0, before_len = -1; field <= len; field++)
	{
		int			end = field;
		int			depth = 0;
		int			shared = 0;

		while (end < len && list[end] != ',')
			end++;
		/* the whole keys shared with the field before: the dots in their common prefix */
		for (int i = 0; i < before_len && field + i < end && list[before + i] == list[field + i]; i++)
			shared += list[field + i] == '.';
		for (int i = field, start = field; i <= end; i++)
		{
			if (i < end && list[i] != '.')
				continue;
			if (depth >= shared)
				paths->keys[paths->nkeys++] = (SignedKey) {start, i - start, depth, i == end ? field : -1};
			depth++;
			start = i + 1;
		}
		paths->depth = Max(paths->depth, depth);
		before = field;
		before_len = end - field;
		field = end;
	}
	return paths;
}

/*
 * The paths a list names, read once and kept for the next message with
 * the same list.  The pointer is the cache's: use it before asking for
 * another list.
 */
const SignedPaths *
signature_paths(const char *list, int len)
{
	SignedPaths *paths;

	if (cached_paths != NULL && cached_paths->text_len == len &&
		memcmp(cached_paths->text, list, len) == 0)
		return cached_paths;
	if (len > SIGNED_PATHS_MAX_CACHED)
		return read_paths(list, len, CurrentMemoryContext);
	paths = read_paths(list, len, TopMemoryContext);
	if (cached_paths != NULL)
		pfree(cached_paths);
	cached_paths = paths;
	return paths;
}

/*
 * Append a value a path names and a '|': a string as stored, a number as
 * JSON clients print it, without trailing zeros (1.50 as 1.5, 1.00 as 1):
 * numeric_normalize is numeric_out of trim_scale, without the new numeric.
 */
static bool
append_path_value(StringInfo buf, JsonbValue *v, char **problem)
{
	if (v != NULL && v->type == jbvNumeric)
	{
		char	   *number = numeric_normalize(v->val.numeric);

		append_piece(buf, number, strlen(number));
		return true;
	}
	return signature_append_field(buf, v, false, "its value", problem);
}

/*
 * Append the values paths name in object, each followed by '|'.  A key
 * is looked up in the object the key before it named; one that is missing,
 * or names no object, leaves the field missing.  False with *problem
 * ("<where>.<field>: ...") for a field missing or neither string nor number.
 */
bool
signature_append_paths(StringInfo buf, const SignedPaths *paths, JsonbContainer *object,
					   const char *where, char **problem)
{
	JsonbContainer *fixed[8];
	JsonbContainer **containers = paths->depth <= (int) lengthof(fixed) ? fixed :
		palloc(paths->depth * sizeof(JsonbContainer *));

	containers[0] = object;
	for (int i = 0; i < paths->nkeys; i++)
	{
		const SignedKey *key = &paths->keys[i];
		JsonbValue	value;
		JsonbValue *v = containers[key->depth] == NULL ? NULL :
			getKeyJsonValueFromContainer(containers[key->depth], paths->text + key->start, key->len, &value);

		if (key->field < 0)
			containers[key->depth + 1] = v != NULL && v->type == jbvBinary &&
				JsonContainerIsObject(v->val.binary.data) ? v->val.binary.data : NULL;
		else if (!append_path_value(buf, v, problem))
		{
			*problem = psprintf("%s.%.*s: %s", where, key->start + key->len - key->field,
								paths->text + key->field, *problem);
			return false;
		}
	}
	return true;
}
