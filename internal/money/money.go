// Package money formats amounts in minor units (cents) for people. It is the
// one formatter of the whole tree: pages, emails, the admin and the offline
// simulator all show amounts through it.
package money

import (
	"strconv"
	"strings"
)

// Decimals is how many digits of a currency's amount are after the point, as
// Stripe counts minor units: 0 for its zero-decimal currencies (JPY, KRW...),
// 3 for the three-decimal ones (BHD, JOD, KWD, OMR, TND), 2 for the rest.
func Decimals(currency string) int {
	switch strings.ToLower(currency) {
	case "bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv", "xaf", "xof", "xpf":
		return 0
	case "bhd", "jod", "kwd", "omr", "tnd":
		return 3
	}
	return 2
}

// ZeroDecimal reports whether currency has no minor unit.
func ZeroDecimal(currency string) bool { return Decimals(currency) == 0 }

// symbol is the prefix shown for common currencies; others show their code
// after the number.
func symbol(currency string) (string, bool) {
	switch currency {
	case "usd":
		return "$", true
	case "eur":
		return "€", true
	case "gbp":
		return "£", true
	case "jpy":
		return "¥", true
	case "cad":
		return "CA$", true
	case "aud":
		return "A$", true
	case "nzd":
		return "NZ$", true
	case "inr":
		return "₹", true
	case "krw":
		return "₩", true
	case "chf":
		return "CHF ", true
	}
	return "", false
}

// Format renders an amount in minor units, such as 2000 usd as "$20.00",
// 500 jpy as "¥500" and 12345 kwd as "12.345 KWD". Unknown currencies show
// their code: "20.00 SEK".
func Format(amount int64, currency string) string {
	cur := strings.ToLower(currency)
	sign, whole, frac := split(amount, cur)
	num := group(whole)
	if frac != "" {
		num += "." + frac
	}
	if sym, ok := symbol(cur); ok {
		return sign + sym + num
	}
	return sign + num + " " + strings.ToUpper(cur)
}

// Decimal renders an amount in minor units as a plain decimal number, with
// neither symbol nor thousands separators, for spreadsheets and scripts:
// 2000 usd is "20.00", 500 jpy "500" and 12345 kwd "12.345".
func Decimal(amount int64, currency string) string {
	sign, whole, frac := split(amount, currency)
	if frac == "" {
		return sign + whole
	}
	return sign + whole + "." + frac
}

// split cuts an amount in minor units into its sign ("" or "-"), its whole
// units and its fraction (Decimals(currency) digits; "" for none), so
// Format and Decimal put the point in the same place.
func split(amount int64, currency string) (sign, whole, frac string) {
	u := uint64(amount)
	if amount < 0 {
		sign, u = "-", uint64(-(amount+1))+1 // no overflow at MinInt64
	}
	digits := strconv.FormatUint(u, 10)
	d := Decimals(currency)
	if d == 0 {
		return sign, digits, ""
	}
	if len(digits) <= d {
		digits = strings.Repeat("0", d-len(digits)+1) + digits
	}
	return sign, digits[:len(digits)-d], digits[len(digits)-d:]
}

// group puts thousands separators into a string of digits.
func group(digits string) string {
	if len(digits) <= 3 {
		return digits
	}
	var b strings.Builder
	head := len(digits) % 3
	if head > 0 {
		b.WriteString(digits[:head])
	}
	for i := head; i < len(digits); i += 3 {
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(digits[i : i+3])
	}
	return b.String()
}
