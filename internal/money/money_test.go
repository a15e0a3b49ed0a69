package money

import "testing"

func TestFormat(t *testing.T) {
	tests := []struct {
		amount   int64
		currency string
		want     string
	}{
		{2000, "usd", "$20.00"},
		{2000, "USD", "$20.00"},
		{5, "usd", "$0.05"},
		{0, "usd", "$0.00"},
		{123456789, "usd", "$1,234,567.89"},
		{-150, "eur", "-€1.50"},
		{500, "jpy", "¥500"},
		{1000000, "krw", "₩1,000,000"},
		{2000, "sek", "20.00 SEK"},
		{2500, "clp", "2,500 CLP"},
		// Three-decimal currencies: 12.345 dinars, not 123.45.
		{12345, "kwd", "12.345 KWD"},
		{1000, "BHD", "1.000 BHD"},
		{5, "jod", "0.005 JOD"},
		{-1234567, "omr", "-1,234.567 OMR"},
		{990, "krw", "₩990"},
		{-9223372036854775808, "usd", "-$92,233,720,368,547,758.08"},
	}
	for _, tt := range tests {
		if got := Format(tt.amount, tt.currency); got != tt.want {
			t.Errorf("Format(%d, %q) = %q, want %q", tt.amount, tt.currency, got, tt.want)
		}
	}
}

func TestDecimal(t *testing.T) {
	tests := []struct {
		amount   int64
		currency string
		want     string
	}{
		{2000, "usd", "20.00"},
		{2000, "USD", "20.00"},
		{5, "usd", "0.05"},
		{0, "usd", "0.00"},
		{123456789, "eur", "1234567.89"},
		{-150, "eur", "-1.50"},
		{500, "jpy", "500"},
		{500, "JPY", "500"},
		{0, "krw", "0"},
		{1000000, "krw", "1000000"},
		{2000, "sek", "20.00"},
		{12345, "kwd", "12.345"},
		{5, "jod", "0.005"},
		{-1234567, "omr", "-1234.567"},
		{-9223372036854775808, "usd", "-92233720368547758.08"},
	}
	for _, tt := range tests {
		if got := Decimal(tt.amount, tt.currency); got != tt.want {
			t.Errorf("Decimal(%d, %q) = %q, want %q", tt.amount, tt.currency, got, tt.want)
		}
	}
}

func TestDecimals(t *testing.T) {
	for cur, want := range map[string]int{"usd": 2, "JPY": 0, "xof": 0, "kwd": 3, "TND": 3, "sek": 2} {
		if got := Decimals(cur); got != want {
			t.Errorf("Decimals(%q) = %d, want %d", cur, got, want)
		}
	}
}

func TestZeroDecimal(t *testing.T) {
	if !ZeroDecimal("JPY") || ZeroDecimal("usd") {
		t.Errorf("ZeroDecimal: got jpy=%v usd=%v, want true false", ZeroDecimal("JPY"), ZeroDecimal("usd"))
	}
}
