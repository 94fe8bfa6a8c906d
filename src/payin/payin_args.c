/*
 * payin_args.c
 *		The arguments of qiwi_payin_create_invoice that Payin documents a
 *		closed set for: custom fields and payment methods, checked before
 *		anything is sent (payin_sql.c checks the rest).
 */
#include "core/core.h"
#include "payin/payin.h"


/* The custom fields the Payin API documents (§8) */
static const char *const custom_field_keys[] = {
	"cf1", "cf2", "cf3", "cf4", "cf5", "invoice_callback_url", "themeCode", "contractId", NULL
};

/* The payment methods an invoice may offer (§8) */
static const char *const payment_method_names[] = {"CARD", "SBP", "QIWI_WALLET", NULL};

/* custom_fields: a JSON object of strings with the documented keys only */
Jsonb *
payin_custom_fields_argument(FunctionCallInfo fcinfo, int argno)
{
	Jsonb	   *fields = arg_optional_custom_fields(fcinfo, argno, "custom_fields", &payin_limits);
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;

	if (fields == NULL)
		return NULL;
	it = JsonbIteratorInit(&fields->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		char	   *key;

		if (tok != WJB_KEY)
			continue;
		key = pnstrdup(v.val.string.val, v.val.string.len);
		if (!qiwi_name_in(key, custom_field_keys))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("custom_fields has an unknown key \"%s\"", key),
					 errdetail("Payin takes cf1 to cf5, invoice_callback_url, themeCode and contractId.")));
	}
	return fields;
}

/* payment_methods: a non-empty array of CARD, SBP, QIWI_WALLET, or NULL */
List *
payin_payment_methods_argument(FunctionCallInfo fcinfo, int argno)
{
	return arg_optional_names(fcinfo, argno, "payment_methods", payment_method_names,
							  "Pass NULL to offer every payment method.");
}
