/*
 * signature.c
 *		Keyed HMAC-SHA256 signatures with the key schedule cached per backend,
 *		as lowercase hex, and their constant-time comparison.  OpenSSL
 *		computes every hash.  Each API builds the string it signs.
 */
#include "core/core.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "mb/pg_wchar.h"
#include "utils/memutils.h"

/*
 * One HMAC context per backend, keyed once; re-initialising it for each
 * message reuses the key schedule, which is what makes bulk checks cheap.
 */
static EVP_MAC *hmac_algorithm = NULL;
static EVP_MAC_CTX *hmac_keyed = NULL;
static char *hmac_key = NULL;	/* copy of the key, in TopMemoryContext */
static size_t hmac_key_len = 0;

/* Raise an error about OpenSSL's HMAC */
static void
hmac_failed(const char *what)
{
	ereport(ERROR,
			(errcode(ERRCODE_SYSTEM_ERROR),
			 errmsg("OpenSSL HMAC-SHA256 failed: %s", what)));
}

/* Make hmac_keyed an HMAC-SHA256 context keyed with key (UTF-8 bytes) */
static void
hmac_set_key(const char *key, size_t key_len)
{
	OSSL_PARAM	params[2];

	if (hmac_keyed != NULL && key_len == hmac_key_len &&
		CRYPTO_memcmp(key, hmac_key, key_len) == 0)
		return;

	if (hmac_algorithm == NULL)
	{
		hmac_algorithm = EVP_MAC_fetch(NULL, "HMAC", NULL);
		if (hmac_algorithm == NULL)
			hmac_failed("no HMAC implementation");
	}
	if (hmac_keyed == NULL)
	{
		hmac_keyed = EVP_MAC_CTX_new(hmac_algorithm);
		if (hmac_keyed == NULL)
			hmac_failed("out of memory");
	}
	if (hmac_key != NULL)
	{
		explicit_bzero(hmac_key, hmac_key_len);
		pfree(hmac_key);
		hmac_key = NULL;
	}

	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0);
	params[1] = OSSL_PARAM_construct_end();
	if (!EVP_MAC_init(hmac_keyed, (const unsigned char *) key, key_len, params))
		hmac_failed("cannot set the key");

	hmac_key = MemoryContextAlloc(TopMemoryContext, key_len + 1);
	memcpy(hmac_key, key, key_len);
	hmac_key_len = key_len;
}

/* Key the HMAC with a secret given as server-encoded text: its UTF-8 bytes */
void
signature_set_key_text(const char *secret, int len)
{
	if (len == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("no secret key to sign or verify with"),
				 errdetail("The secret argument is NULL or empty and qiwi.secret_key is not set.")));
	/* QIWI keys with the UTF-8 bytes; most databases already hold them */
	if (GetDatabaseEncoding() != PG_UTF8)
	{
		secret = pg_server_to_any(pnstrdup(secret, len), len, PG_UTF8);
		len = strlen(secret);
	}
	hmac_set_key(secret, len);
}

/* Lowercase hex HMAC-SHA256 of message under the current key, into hex[65] */
void
signature_hmac_hex(const char *message, size_t len, char *hex)
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	size_t		mac_len = 0;
	static const char digits[] = "0123456789abcdef";

	/* a NULL key re-initialises with the key already set */
	if (!EVP_MAC_init(hmac_keyed, NULL, 0, NULL) ||
		!EVP_MAC_update(hmac_keyed, (const unsigned char *) message, len) ||
		!EVP_MAC_final(hmac_keyed, mac, &mac_len, sizeof(mac)) ||
		mac_len != SIGNATURE_BYTES)
		hmac_failed("cannot compute the MAC");
	for (size_t i = 0; i < SIGNATURE_BYTES; i++)
	{
		hex[2 * i] = digits[mac[i] >> 4];
		hex[2 * i + 1] = digits[mac[i] & 0x0f];
	}
	hex[SIGNATURE_HEX_LENGTH] = '\0';
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

/*
 * Does a hex signature (either case) equal the expected lowercase hex one?
 * Compared in constant time wherever they differ.
 */
bool
signature_hex_equal(const char *given, int len, const char *expected)
{
	char		lower[SIGNATURE_HEX_LENGTH];

	if (len != SIGNATURE_HEX_LENGTH)
		return false;
	for (int i = 0; i < SIGNATURE_HEX_LENGTH; i++)
	{
		char		c = given[i];

		lower[i] = (c >= 'A' && c <= 'F') ? c + ('a' - 'A') : c;
	}
	return CRYPTO_memcmp(lower, expected, SIGNATURE_HEX_LENGTH) == 0;
}
