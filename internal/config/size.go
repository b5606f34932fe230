package config

import (
	"fmt"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// ByteSize is a number of bytes, written as an integer or with a binary
// unit: 1073741824, 1GiB, 512MiB, 64KiB. -1 means no limit. Decimal units
// (GB, MB) are refused rather than guessed at: nats-server reads "1G" as
// 1024³, most other tools as 1000³.
type ByteSize int64

var byteUnits = []struct {
	suffix string
	factor int64
}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}}

// ParseByteSize reads s as a ByteSize.
func ParseByteSize(s string) (ByteSize, error) {
	t := strings.TrimSpace(s)
	for _, u := range byteUnits {
		num, ok := strings.CutSuffix(t, u.suffix)
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(num), 10, 64)
		if err != nil || n < 0 || n > (1<<63-1)/u.factor {
			break
		}
		return ByteSize(n * u.factor), nil
	}
	if n, err := strconv.ParseInt(t, 10, 64); err == nil && n >= -1 {
		return ByteSize(n), nil
	}
	return 0, fmt.Errorf("%q is not a size: bytes, or a whole number of KiB, MiB, GiB or TiB (-1 for no limit)", s)
}

// String writes b with the largest binary unit that divides it.
func (b ByteSize) String() string {
	if b <= 0 {
		return strconv.FormatInt(int64(b), 10)
	}
	for _, u := range byteUnits {
		if int64(b)%u.factor == 0 {
			return strconv.FormatInt(int64(b)/u.factor, 10) + u.suffix
		}
	}
	return strconv.FormatInt(int64(b), 10) // not reached: B divides all
}

// UnmarshalYAML reads an integer or a string with a unit.
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: a size is a number of bytes or a string such as 1GiB", n.Line)
	}
	v, err := ParseByteSize(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*b = v
	return nil
}

// MarshalYAML writes the size as String does.
func (b ByteSize) MarshalYAML() (any, error) { return b.String(), nil }
