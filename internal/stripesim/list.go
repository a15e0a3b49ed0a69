package stripesim

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
)

// Every list the simulator answers pages the way Stripe's lists do: at most
// limit objects (1 to 100, default 10) in the list's order, after the
// object named by starting_after or before the one named by ending_before,
// with has_more telling whether the list goes on in that direction.

const (
	defaultListLimit = 10
	maxListLimit     = 100
)

// listQuery is the paging part of a list request.
type listQuery struct {
	limit  int
	after  string // starting_after: the page follows this object
	before string // ending_before: the page precedes this object
}

func parseListQuery(q url.Values) (listQuery, apiResponse, bool) {
	lq := listQuery{limit: defaultListLimit, after: q.Get("starting_after"), before: q.Get("ending_before")}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxListLimit {
			return lq, invalid("limit", fmt.Sprintf("This value must be between 1 and %d.", maxListLimit)), false
		}
		lq.limit = n
	}
	if lq.after != "" && lq.before != "" {
		return lq, invalid("starting_after", "You may only specify one of these parameters: ending_before, starting_after."), false
	}
	return lq, apiResponse{}, true
}

// paginate returns the page of items that lq selects among those keep
// accepts (nil keeps all), and whether the list goes on beyond it. A cursor
// is looked up among all items, not only the kept ones, so that paging
// survives an object that stopped matching between two requests (a price
// archived while the shop pages through active prices). object names the
// items in the answer to an unknown cursor.
func paginate[T any](items []T, id func(T) string, keep func(T) bool, lq listQuery, object string) ([]T, bool, apiResponse, bool) {
	index := func(cursor string) int { return slices.IndexFunc(items, func(it T) bool { return id(it) == cursor }) }
	window := items
	switch {
	case lq.after != "":
		i := index(lq.after)
		if i < 0 {
			return nil, false, missing(object, lq.after, "starting_after"), false
		}
		window = items[i+1:]
	case lq.before != "":
		i := index(lq.before)
		if i < 0 {
			return nil, false, missing(object, lq.before, "ending_before"), false
		}
		window = items[:i]
	}
	var kept []T
	for _, it := range window {
		if keep == nil || keep(it) {
			kept = append(kept, it)
		}
	}
	if lq.before != "" { // the page is the objects nearest the cursor
		return kept[max(0, len(kept)-lq.limit):], len(kept) > lq.limit, apiResponse{}, true
	}
	return kept[:min(lq.limit, len(kept))], len(kept) > lq.limit, apiResponse{}, true
}

// listObject is a list answer in Stripe's shape. data must not be nil, so
// that an empty page reads "data": [].
func listObject[T any](data []T, hasMore bool, path string) map[string]any {
	if data == nil {
		data = []T{}
	}
	return map[string]any{"object": "list", "data": data, "has_more": hasMore, "url": path}
}

// checkExpand returns the expansions a request asks for, refusing any that
// the route cannot expand, as Stripe does. stripe-mock is no help here: it
// ignores unknown expansions on some routes and fails with a 500 on others.
func checkExpand(q url.Values, allowed ...string) (map[string]bool, apiResponse, bool) {
	set := expandSet(q)
	for v := range set {
		if !slices.Contains(allowed, v) {
			return nil, stripeError(http.StatusBadRequest, "invalid_request_error", "", "expand",
				fmt.Sprintf("This property cannot be expanded (%s).", v)), false
		}
	}
	return set, apiResponse{}, true
}
