package orders

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/url"
)

// LinkKey signs links to order pages. An order's page opens only with the
// token of its own link, handed to the shopper on the success page and in
// the confirmation email; the key is one of the shop's secrets (see
// Service.Secret), made at first start, so it needs no setting.
type LinkKey []byte

// Token is the token of the order's page.
func (k LinkKey) Token(orderID string) string {
	mac := hmac.New(sha256.New, k)
	mac.Write([]byte("order-page\x00" + orderID))
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// Valid reports whether token opens the order's page, in constant time.
func (k LinkKey) Valid(orderID, token string) bool {
	return len(k) > 0 && hmac.Equal([]byte(k.Token(orderID)), []byte(token))
}

// PagePath is the path of the order's page, with its token.
func (k LinkKey) PagePath(orderID string) string {
	return "/orders/" + url.PathEscape(orderID) + "?token=" + k.Token(orderID)
}
