// Package money formats amounts in minor units (cents) for people.
package money

import (
	"strconv"
	"strings"
)

// zeroDecimal lists the currencies Stripe counts in whole units.
// See Stripe's "Zero-decimal currencies".
var zeroDecimal = map[string]bool{
	"bif": true, "clp": true, "djf": true, "gnf": true, "jpy": true, "kmf": true,
	"krw": true, "mga": true, "pyg": true, "rwf": true, "ugx": true, "vnd": true,
	"vuv": true, "xaf": true, "xof": true, "xpf": true,
}

// symbols are the prefixes shown for common currencies; others show their code.
var symbols = map[string]string{
	"usd": "$", "eur": "€", "gbp": "£", "jpy": "¥", "cad": "CA$", "aud": "A$",
	"nzd": "NZ$", "inr": "₹", "krw": "₩", "chf": "CHF ",
}

// ZeroDecimal reports whether currency has no minor unit.
func ZeroDecimal(currency string) bool { return zeroDecimal[strings.ToLower(currency)] }

// Format renders an amount in minor units, such as 2000 usd as "$20.00" and
// 500 jpy as "¥500". Unknown currencies show their code: "20.00 SEK".
func Format(amount int64, currency string) string {
	cur := strings.ToLower(currency)
	sign := ""
	if amount < 0 {
		sign, amount = "-", -amount
	}
	var num string
	if zeroDecimal[cur] {
		num = group(strconv.FormatInt(amount, 10))
	} else {
		frac := amount % 100
		num = group(strconv.FormatInt(amount/100, 10)) + "." + strconv.FormatInt(100+frac, 10)[1:]
	}
	if sym, ok := symbols[cur]; ok {
		return sign + sym + num
	}
	return sign + num + " " + strings.ToUpper(cur)
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
