package bulk

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"

	"github.com/google/uuid"
)

// idNamespace roots the ids of imported events. It must never change: with a
// new namespace, importing a file again after an upgrade would publish every
// row again instead of being swallowed by the duplicate window.
var idNamespace = uuid.MustParse("65fb30e1-bd39-42d0-8df1-2005fe33961b")

// EventID names the joined event of the row starting on line of the file
// whose SHA-256 is sum. Importing the same bytes again yields the same ids,
// so JetStream's duplicate window (Nats-Msg-Id = event id) stores each row
// once; a changed file is a new batch with new ids.
func EventID(sum [sha256.Size]byte, line int) string {
	return uuid.NewSHA1(idNamespace, []byte(hex.EncodeToString(sum[:])+":"+strconv.Itoa(line))).String()
}
