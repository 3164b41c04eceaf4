# Rerun: /usr/bin/python3 scripts/make-big-png.py  (writes big/big.png in the current folder; see docs/BENCHMARKS.md)
# Writes an 8000x8000 greyscale PNG (black, a few white squares): tiny file, 64 megapixels.
import zlib, struct
W = H = 8000
def chunk(t, d): return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
blank = b"\x00" + b"\x00" * W
rows = []
for y in range(H):
    if 3000 <= y < 4000:
        r = bytearray(W); r[2000:3000] = b"\xff" * 1000; r[5000:5600] = b"\x80" * 600
        rows.append(b"\x00" + bytes(r))
    else:
        rows.append(blank)
data = zlib.compress(b"".join(rows), 9)
png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", W, H, 8, 0, 0, 0, 0)) + chunk(b"IDAT", data) + chunk(b"IEND", b"")
import os; os.makedirs("big", exist_ok=True); open("big/big.png", "wb").write(png)
print(len(png))
