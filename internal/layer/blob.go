package layer

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

var (
	magicGzip = []byte{0x1f, 0x8b}
	magicZstd = []byte{0x28, 0xb5, 0x2f, 0xfd}
	magicXz   = []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}
	magicBz2  = []byte{'B', 'Z', 'h'}
)

// blob is an open, decompressed layer stream.
type blob struct {
	io.Reader
	closers []func() error
}

func (b *blob) Close() error {
	var errs []error
	for i := len(b.closers) - 1; i >= 0; i-- {
		errs = append(errs, b.closers[i]())
	}
	return errors.Join(errs...)
}

// drain reads the stream to its end: a tar reader stops at the end-of-archive blocks, but the gzip
// CRC and the zstd checksum are only verified when the decompressor reaches its own end.
func (b *blob) drain() error {
	_, err := io.Copy(io.Discard, b.Reader)
	return err
}

// openBlob opens a layer and detects its compression by magic bytes, not by media type.
func openBlob(ctx context.Context, l Layer) (*blob, error) {
	if l.Open == nil {
		return nil, errors.New("layer has no Open function")
	}
	rc, err := l.Open()
	if err != nil {
		return nil, fmt.Errorf("open blob: %w", err)
	}
	b := &blob{closers: []func() error{rc.Close}}
	br := bufio.NewReaderSize(ctxReader{ctx: ctx, r: rc}, 64<<10)
	head, err := br.Peek(6)
	if err != nil && !errors.Is(err, io.EOF) {
		b.Close()
		return nil, fmt.Errorf("read blob: %w", err)
	}
	switch {
	case bytes.HasPrefix(head, magicGzip):
		zr, err := gzip.NewReader(br)
		if err != nil {
			b.Close()
			return nil, fmt.Errorf("gzip: %w", err)
		}
		b.Reader, b.closers = zr, append(b.closers, zr.Close)
	case bytes.HasPrefix(head, magicZstd):
		// A frame may ask for any window size; 512 MiB admits "zstd --long=29" and no memory bomb.
		zr, err := zstd.NewReader(br, zstd.WithDecoderMaxWindow(1<<29))
		if err != nil {
			b.Close()
			return nil, fmt.Errorf("zstd: %w", err)
		}
		b.Reader, b.closers = zr, append(b.closers, func() error { zr.Close(); return nil })
	case bytes.HasPrefix(head, magicXz), bytes.HasPrefix(head, magicBz2):
		b.Close()
		return nil, errors.New("blob is xz or bzip2 compressed; OCI layers are tar, tar+gzip or tar+zstd")
	default:
		b.Reader = br
	}
	return b, nil
}

// ctxReader stops a long read promptly when the context is cancelled.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
