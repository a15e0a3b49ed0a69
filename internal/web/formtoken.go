package web

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"time"
)

// formTokens issues and checks the tokens of purchase forms. A token is a
// random nonce, its expiry and an HMAC of both under a key the shop keeps
// in its database, so only the shop makes valid ones: a made-up token, or
// someone else's past its life, names no order.
type formTokens struct {
	key []byte
	ttl time.Duration
	now func() time.Time
}

const (
	tokenNonce = 12
	tokenMAC   = 16
	tokenBytes = tokenNonce + 8 + tokenMAC
)

// issue returns a fresh token, valid for ttl: 48 characters of
// [A-Za-z0-9_-], as random as its nonce and MAC.
func (f formTokens) issue() string {
	var b [tokenBytes]byte
	_, _ = rand.Read(b[:tokenNonce]) // crypto/rand never fails on supported platforms
	binary.BigEndian.PutUint64(b[tokenNonce:], uint64(f.now().Add(f.ttl).Unix()))
	copy(b[tokenNonce+8:], f.mac(b[:tokenNonce+8]))
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// valid reports whether token was issued by this shop and is still alive.
func (f formTokens) valid(token string) bool {
	b, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(b) != tokenBytes || len(f.key) == 0 {
		return false
	}
	if !hmac.Equal(b[tokenNonce+8:], f.mac(b[:tokenNonce+8])) {
		return false
	}
	expiry := int64(binary.BigEndian.Uint64(b[tokenNonce:]))
	return f.now().Unix() < expiry
}

func (f formTokens) mac(msg []byte) []byte {
	m := hmac.New(sha256.New, f.key)
	m.Write([]byte("form-token\x00"))
	m.Write(msg)
	return m.Sum(nil)[:tokenMAC]
}
