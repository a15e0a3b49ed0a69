package postgres

import (
	"context"
	"fmt"
	"time"
)

// TryLease takes the named lease for holder until ttl from now, if it is
// free, expired, or already holder's; it reports whether holder has it. The
// database's clock decides, so instances with skewed clocks still agree.
func (s *Store) TryLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error) {
	tag, err := s.pool.Exec(ctx, `INSERT INTO leases (name, holder, until)
		VALUES ($1, $2, now() + $3 * interval '1 microsecond')
		ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, until = EXCLUDED.until
		WHERE leases.until < now() OR leases.holder = EXCLUDED.holder`,
		name, holder, ttl.Microseconds())
	if err != nil {
		return false, fmt.Errorf("postgres: lease %s: %w", name, err)
	}
	return tag.RowsAffected() == 1, nil
}
