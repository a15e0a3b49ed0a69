package orders

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"
)

// How far an event's creation time may be from the present before the shop
// stops believing it: Stripe keeps events for 30 days, and signatures are
// checked against the shop's clock within minutes.
const (
	MaxEventAge    = 35 * 24 * time.Hour
	MaxEventFuture = time.Hour
)

// HandleSigned handles the body of an event whose signature was checked (a
// webhook delivery, or an event listed through the Events API). A readable
// event goes through HandleEvent; one of the other mode than the shop's is
// stored, logged and not applied; one that cannot be read (wrong types, no
// object, absurd figures, a creation time far from the present) is stored
// raw with the outcome "unreadable" and an alarm, so nothing Stripe signed
// is dropped and Stripe is not asked to deliver it for three more days.
func (s *Service) HandleSigned(ctx context.Context, body []byte) (Event, ApplyResult, error) {
	ev, err := ParseEvent(body)
	if err == nil {
		now := s.clock()
		switch {
		case ev.Created.Before(now.Add(-MaxEventAge)):
			err = fmt.Errorf("created %s, more than %v ago", ev.Created.Format(time.RFC3339), MaxEventAge)
		case ev.Created.After(now.Add(MaxEventFuture)):
			err = fmt.Errorf("created %s, in the future", ev.Created.Format(time.RFC3339))
		}
	}
	if err != nil {
		return s.recordUnreadable(ctx, body, err)
	}
	if ev.Livemode != s.live {
		res, err := s.recordWrongMode(ctx, ev)
		return ev, res, err
	}
	res, err := s.HandleEvent(ctx, ev)
	return ev, res, err
}

// unreadableID names an event that cannot be read: its own id when that
// much can be read, else one derived from the body, so a redelivery of the
// same body is a duplicate.
func unreadableID(body []byte) (id, typ string) {
	var head struct {
		ID   json.RawMessage `json:"id"`
		Type json.RawMessage `json:"type"`
	}
	_ = json.Unmarshal(body, &head) // whatever can be read
	var sid, styp string
	if json.Unmarshal(head.ID, &sid) != nil || sid == "" || len(sid) > 255 {
		sum := sha256.Sum256(body)
		sid = "evt_unreadable_" + hex.EncodeToString(sum[:12])
	}
	if json.Unmarshal(head.Type, &styp) != nil || styp == "" || len(styp) > 255 {
		styp = "unknown"
	}
	return sid, styp
}

func (s *Service) recordUnreadable(ctx context.Context, body []byte, why error) (Event, ApplyResult, error) {
	id, typ := unreadableID(body)
	ev := Event{ID: id, Type: typ, Payload: body}
	detail := why.Error()
	if len(detail) > 300 {
		detail = detail[:300] + "…"
	}
	var res ApplyResult
	err := s.write(ctx, "apply_event", func(ctx context.Context, tx Tx, fx *effects) error {
		res = ApplyResult{}
		now := s.clock()
		// Stripe's creation time is among what cannot be believed: the
		// record keeps the receiving time in its place.
		stored, err := tx.InsertEvent(ctx, EventRecord{ID: id, Type: typ, Outcome: OutcomeUnreadable, Created: now, Received: now, Payload: body})
		if err != nil || !stored {
			res.Duplicate = err == nil
			return err
		}
		res.Stored = OutcomeUnreadable
		return s.raise(ctx, tx, fx, newAlarm(AlarmUnreadableEvent, id, "", "Stripe signed an event the shop cannot read ("+detail+
			"). It is stored as received; look it up in the Stripe Dashboard and apply what it says by hand.", now))
	})
	if err != nil {
		return ev, ApplyResult{}, fmt.Errorf("store unreadable event %s: %w", id, err)
	}
	if !res.Duplicate {
		s.log.LogAttrs(ctx, slog.LevelError, "unreadable event stored; see /admin/alarms",
			slog.String("event_id", id), slog.String("type", typ), slog.String("reason", detail))
	}
	return ev, res, nil
}

func (s *Service) recordWrongMode(ctx context.Context, ev Event) (ApplyResult, error) {
	var res ApplyResult
	err := s.write(ctx, "apply_event", func(ctx context.Context, tx Tx, _ *effects) error {
		res = ApplyResult{}
		stored, err := tx.InsertEvent(ctx, EventRecord{ID: ev.ID, Type: ev.Type, APIVersion: ev.APIVersion, SessionID: ev.Session.ID,
			Outcome: OutcomeWrongMode, Created: ev.Created, Received: s.clock(), Payload: ev.Payload})
		res.Duplicate = err == nil && !stored
		if stored {
			res.Stored = OutcomeWrongMode
		}
		return err
	})
	if err != nil {
		return ApplyResult{}, fmt.Errorf("store event %s: %w", ev.ID, err)
	}
	if !res.Duplicate {
		mode := map[bool]string{true: "live", false: "test"}
		s.log.LogAttrs(ctx, slog.LevelWarn, "event of the other mode stored and not applied: is a webhook endpoint pointed at the wrong shop?",
			slog.String("event_id", ev.ID), slog.String("type", ev.Type), slog.String("event_mode", mode[ev.Livemode]), slog.String("shop_mode", mode[s.live]))
	}
	return res, nil
}

// raise inserts an alarm in tx; the OnAlarm hook hears of it after the
// commit.
func (s *Service) raise(ctx context.Context, tx Tx, fx *effects, a Alarm) error {
	if err := tx.InsertAlarm(ctx, a); err != nil {
		return err
	}
	fx.alarms = append(fx.alarms, a)
	return nil
}

// Alarms returns alarms, newest first: first those worked out from the
// shop's state now (a failing store, dead notifications), then the stored
// ones f asks for.
func (s *Service) Alarms(ctx context.Context, f AlarmFilter) ([]Alarm, error) {
	var derived []Alarm
	now := s.clock()
	if err := s.Health(ctx); errors.Is(err, ErrWritesFailing) {
		derived = append(derived, newAlarm(AlarmStoreWrites, "store", "", "The latest write to the database failed: "+err.Error()+".", now))
	}
	dead, err := s.store.DeadNotifications(ctx, AlarmFilter{Limit: f.Limit}.bound())
	if err != nil {
		return nil, err
	}
	for _, n := range dead {
		a := newAlarm(AlarmDeadNotification, n.ID, n.OrderID, "The "+n.Type+" notification to "+string(n.Channel)+
			" gave up after "+strconv.Itoa(n.Attempts)+" attempts: "+n.LastError, n.CreatedAt)
		derived = append(derived, a)
	}
	stored, err := s.store.Alarms(ctx, f)
	if err != nil {
		return nil, err
	}
	return append(derived, stored...), nil
}

// Alarm returns one stored alarm; a derived one is not stored, so it is
// not found (ErrNotFound).
func (s *Service) Alarm(ctx context.Context, id string) (Alarm, error) { return s.store.Alarm(ctx, id) }

// ResolveAlarm marks a stored alarm resolved by hand and returns it. An
// alarm already resolved stays as it was. A derived alarm is not stored, so
// it is not found (ErrNotFound): it ends with its cause.
func (s *Service) ResolveAlarm(ctx context.Context, id string) (Alarm, error) {
	a, err := s.store.Alarm(ctx, id)
	if err != nil {
		return Alarm{}, err
	}
	if a.ResolvedAt != nil {
		return a, nil
	}
	err = s.write(ctx, "resolve_alarm", func(ctx context.Context, tx Tx, _ *effects) error {
		return tx.ResolveAlarm(ctx, id, s.clock())
	})
	if err != nil {
		return Alarm{}, err
	}
	return s.store.Alarm(ctx, id)
}
