package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// PostgresSchema returns the test PostgreSQL's URL with a new, empty schema
// on its search path, dropped when the test ends, so that several shops (or
// stores) in one test share a database while tests stay apart. maxConns
// bounds each pool opened on the URL.
func PostgresSchema(t testing.TB, maxConns int) string {
	t.Helper()
	base := Postgres(t)
	var b [6]byte
	rand.Read(b[:])
	name := "shop_s_" + hex.EncodeToString(b[:])
	exec := func(sql string) {
		// Also run from Cleanup, after t.Context is done.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Fatalf("connect to the test PostgreSQL: %v", err)
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	exec("CREATE SCHEMA " + name)
	t.Cleanup(func() { exec("DROP SCHEMA " + name + " CASCADE") })
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("SHOP_TEST_POSTGRES_URL: %v", err)
	}
	q := u.Query()
	q.Set("search_path", name)
	q.Set("pool_max_conns", strconv.Itoa(maxConns))
	u.RawQuery = q.Encode()
	return u.String()
}
