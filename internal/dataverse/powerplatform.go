package dataverse

import (
	"context"
	"net/http"
	"net/url"
	"strings"

	"github.com/guestflow/guestflow/internal/failure"
	"github.com/guestflow/guestflow/internal/wire"
)

// PowerPlatformScope is the token scope of the Power Platform admin API.
// The double slash is how Microsoft documents it: the resource is
// "https://service.powerapps.com/" and "/.default" is appended to it.
const PowerPlatformScope = "https://service.powerapps.com//.default"

// powerPlatformAPIVersion is the version Microsoft's admin PowerShell
// module uses for addUser (Add-AdminPowerAppsSyncUser accepts it).
const powerPlatformAPIVersion = "2020-10-01"

// ForceSync asks the Power Platform admin API to add an Entra user to an
// environment now instead of waiting for the background sync. Microsoft
// refuses while the user does not yet hold a license (or is not in the
// environment's security group), so a failure here is worth retrying.
func (c *Client) ForceSync(ctx context.Context, powerPlatformURL, environmentID, objectID string) error {
	if err := wire.GUID(objectID); err != nil {
		return failure.Malformed("powerplatform", "force user sync", "user id", err)
	}
	u := strings.TrimSuffix(powerPlatformURL, "/") + "/providers/Microsoft.BusinessAppPlatform/scopes/admin/environments/" +
		url.PathEscape(environmentID) + "/addUser?api-version=" + powerPlatformAPIVersion
	return c.call(ctx, "powerplatform", "force user sync", PowerPlatformScope, http.MethodPost, u, map[string]string{"ObjectId": objectID}, nil)
}
