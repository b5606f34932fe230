package license

import (
	"context"
	"sync"
	"time"

	"github.com/guestflow/guestflow/internal/directory"
)

// SkuTTL is how long the step trusts the tenant's SKU list. Every
// onboarding reads it to turn the license's part number into an id, which
// never changes, and to see a free seat, which does: so a cached list is
// trusted only to say what it says for certain. A part number it does not
// name, or a SKU it shows without a free seat, is read again before the
// step fails; a seat it shows free that is gone meanwhile is Graph's to
// refuse, and assignLicense does so with the same no_license_seats.
const SkuTTL = time.Minute

// skuList caches GET /subscribedSkus (3 resource units a read).
type skuList struct {
	dir Directory
	ttl time.Duration
	now func() time.Time

	mu   sync.Mutex
	at   time.Time
	skus []directory.Sku
}

// get returns the SKUs, from the cache unless fresh is set or it is older
// than the TTL; cached says which.
func (l *skuList) get(ctx context.Context, fresh bool) (skus []directory.Sku, cached bool, err error) {
	l.mu.Lock()
	if !fresh && l.skus != nil && l.now().Sub(l.at) < l.ttl {
		skus := l.skus
		l.mu.Unlock()
		return skus, true, nil
	}
	l.mu.Unlock()
	skus, err = l.dir.SubscribedSkus(ctx)
	if err != nil {
		return nil, false, err
	}
	l.mu.Lock()
	l.skus, l.at = skus, l.now()
	l.mu.Unlock()
	return skus, false, nil
}
