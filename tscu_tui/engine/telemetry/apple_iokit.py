"""ctypes bindings to IOKit for Apple Silicon temperatures (no extra dependency, no sudo).

Two ways in, both used by macmon, mactop, stats and actop:
- `IOKitSmc`: a user client of the `AppleSMCKeysEndpoint` service, spoken to
  with `IOConnectCallStructMethod` (selector 2) and the 80-byte SMCKeyData
  struct: command 8 reads the key at an index, 9 a key's size and type, 5 its
  bytes. It implements `apple_sensors.SmcConnection`.
- `read_hid_temperatures`: the IOHIDEventSystem temperature services (Apple
  vendor page 0xff00, usage 5) with their "Product" names.

Frameworks are loaded on first use and only on macOS, so importing this module
is harmless anywhere; every entry point answers None or [] off macOS. All the
interpretation (which key is a die sensor) lives in `apple_sensors`.
"""

from __future__ import annotations

import ctypes
import struct
import sys
from functools import cache
from typing import Any

IOKIT = "/System/Library/Frameworks/IOKit.framework/IOKit"
CORE_FOUNDATION = "/System/Library/Frameworks/CoreFoundation.framework/CoreFoundation"
LIBSYSTEM = "/usr/lib/libSystem.B.dylib"

SMC_SELECTOR = 2  # kSMCHandleYPCEvent: every command goes through this struct call
CMD_READ_BYTES = 5
CMD_READ_INDEX = 8
CMD_READ_KEYINFO = 9
KEY_COUNT = "#KEY"

HID_PAGE_APPLE_VENDOR = 0xFF00
HID_USAGE_TEMPERATURE = 0x0005
HID_EVENT_TEMPERATURE = 15
CF_STRING_UTF8 = 0x08000100
CF_NUMBER_SINT32 = 3


class _Version(ctypes.Structure):
    _fields_ = [("major", ctypes.c_uint8), ("minor", ctypes.c_uint8),
                ("build", ctypes.c_uint8), ("reserved", ctypes.c_uint8),
                ("release", ctypes.c_uint16)]


class _PLimit(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint16), ("length", ctypes.c_uint16),
                ("cpu", ctypes.c_uint32), ("gpu", ctypes.c_uint32), ("mem", ctypes.c_uint32)]


class _KeyInfo(ctypes.Structure):
    _fields_ = [("data_size", ctypes.c_uint32), ("data_type", ctypes.c_uint32),
                ("data_attributes", ctypes.c_uint8)]


class SMCKeyData(ctypes.Structure):
    """The kernel's struct, natural C alignment: 80 bytes (asserted by the tests)."""

    _fields_ = [("key", ctypes.c_uint32), ("vers", _Version), ("p_limit", _PLimit),
                ("key_info", _KeyInfo), ("result", ctypes.c_uint8),
                ("status", ctypes.c_uint8), ("data8", ctypes.c_uint8),
                ("data32", ctypes.c_uint32), ("bytes", ctypes.c_uint8 * 32)]


def fourcc(text: str) -> int:
    return struct.unpack(">I", text.encode("ascii"))[0]


def from_fourcc(value: int) -> str:
    return struct.pack(">I", value).decode("ascii", errors="replace")


def on_macos() -> bool:
    return sys.platform == "darwin"


@cache
def _iokit() -> Any:
    lib = ctypes.cdll.LoadLibrary(IOKIT)
    u32, vp = ctypes.c_uint32, ctypes.c_void_p
    signatures = {
        "IOServiceMatching": (vp, [ctypes.c_char_p]),
        "IOServiceGetMatchingServices": (ctypes.c_int, [u32, vp, ctypes.POINTER(u32)]),
        "IOIteratorNext": (u32, [u32]),
        "IORegistryEntryGetName": (ctypes.c_int, [u32, ctypes.c_char_p]),
        "IOServiceOpen": (ctypes.c_int, [u32, u32, u32, ctypes.POINTER(u32)]),
        "IOServiceClose": (ctypes.c_int, [u32]),
        "IOObjectRelease": (ctypes.c_int, [u32]),
        "IOConnectCallStructMethod": (ctypes.c_int, [u32, u32, vp, ctypes.c_size_t, vp,
                                                     ctypes.POINTER(ctypes.c_size_t)]),
        "IOHIDEventSystemClientCreate": (vp, [vp]),
        "IOHIDEventSystemClientSetMatching": (ctypes.c_int, [vp, vp]),
        "IOHIDEventSystemClientCopyServices": (vp, [vp]),
        "IOHIDServiceClientCopyProperty": (vp, [vp, vp]),
        "IOHIDServiceClientCopyEvent": (vp, [vp, ctypes.c_int64, ctypes.c_int32,
                                             ctypes.c_int64]),
        "IOHIDEventGetFloatValue": (ctypes.c_double, [vp, ctypes.c_int32]),
    }
    for name, (restype, argtypes) in signatures.items():
        function = getattr(lib, name)
        function.restype, function.argtypes = restype, argtypes
    return lib


@cache
def _cf() -> Any:
    lib = ctypes.cdll.LoadLibrary(CORE_FOUNDATION)
    vp = ctypes.c_void_p
    signatures = {
        "CFStringCreateWithCString": (vp, [vp, ctypes.c_char_p, ctypes.c_uint32]),
        "CFStringGetCString": (ctypes.c_bool, [vp, ctypes.c_char_p, ctypes.c_long,
                                               ctypes.c_uint32]),
        "CFNumberCreate": (vp, [vp, ctypes.c_long, vp]),
        "CFDictionaryCreate": (vp, [vp, vp, vp, ctypes.c_long, vp, vp]),
        "CFArrayGetCount": (ctypes.c_long, [vp]),
        "CFArrayGetValueAtIndex": (vp, [vp, ctypes.c_long]),
        "CFRelease": (None, [vp]),
    }
    for name, (restype, argtypes) in signatures.items():
        function = getattr(lib, name)
        function.restype, function.argtypes = restype, argtypes
    return lib


def cpu_brand() -> str | None:
    """sysctl machdep.cpu.brand_string ("Apple M3 Max"), None off macOS or on failure."""
    if not on_macos():
        return None
    sysctlbyname = ctypes.CDLL(LIBSYSTEM).sysctlbyname
    sysctlbyname.restype = ctypes.c_int  # typed: an untyped 0 is not a 64-bit size_t on arm64
    sysctlbyname.argtypes = [ctypes.c_char_p, ctypes.c_void_p, ctypes.POINTER(ctypes.c_size_t),
                             ctypes.c_void_p, ctypes.c_size_t]
    size = ctypes.c_size_t(0)
    name = b"machdep.cpu.brand_string"
    if sysctlbyname(name, None, ctypes.byref(size), None, 0) != 0 or size.value == 0:
        return None
    buffer = ctypes.create_string_buffer(size.value)
    if sysctlbyname(name, buffer, ctypes.byref(size), None, 0) != 0:
        return None
    return buffer.value.decode("utf-8", errors="replace")


class IOKitSmc:
    """A connection to AppleSMCKeysEndpoint (readable without root on Apple Silicon)."""

    def __init__(self, connection: int) -> None:
        self._conn = connection
        self._info: dict[str, tuple[int, str] | None] = {}

    def _call(self, request: SMCKeyData) -> SMCKeyData | None:
        reply = SMCKeyData()
        size = ctypes.c_size_t(ctypes.sizeof(SMCKeyData))
        status = _iokit().IOConnectCallStructMethod(
            self._conn, SMC_SELECTOR, ctypes.byref(request), ctypes.sizeof(SMCKeyData),
            ctypes.byref(reply), ctypes.byref(size))
        return reply if status == 0 and reply.result == 0 else None

    def key_count(self) -> int:
        info = self.key_info(KEY_COUNT)
        data = self.read_bytes(KEY_COUNT, *info) if info is not None else None
        return struct.unpack(">I", data[:4])[0] if data and len(data) >= 4 else 0  # big endian

    def key_at(self, index: int) -> str | None:
        request = SMCKeyData(data8=CMD_READ_INDEX, data32=index)
        reply = self._call(request)
        return from_fourcc(reply.key) if reply is not None else None

    def key_info(self, key: str) -> tuple[int, str] | None:
        if key not in self._info:
            reply = self._call(SMCKeyData(key=fourcc(key), data8=CMD_READ_KEYINFO))
            self._info[key] = (None if reply is None else
                               (int(reply.key_info.data_size),
                                from_fourcc(reply.key_info.data_type)))
        return self._info[key]

    def read_bytes(self, key: str, size: int, data_type: str) -> bytes | None:
        request = SMCKeyData(key=fourcc(key), data8=CMD_READ_BYTES)
        request.key_info.data_size = size
        request.key_info.data_type = fourcc(data_type)
        reply = self._call(request)
        return bytes(reply.bytes[:size]) if reply is not None else None

    def close(self) -> None:
        if self._conn:
            _iokit().IOServiceClose(self._conn)
            self._conn = 0


def open_smc() -> IOKitSmc | None:
    """Open AppleSMCKeysEndpoint; None off macOS or when the service is not there."""
    if not on_macos():
        return None
    iokit = _iokit()
    iterator = ctypes.c_uint32(0)
    # kIOMainPortDefault is 0; IOServiceGetMatchingServices consumes the matching dict
    if iokit.IOServiceGetMatchingServices(0, iokit.IOServiceMatching(b"AppleSMC"),
                                          ctypes.byref(iterator)) != 0:
        return None
    task = ctypes.CDLL(LIBSYSTEM).mach_task_self
    task.restype, task.argtypes = ctypes.c_uint32, []
    connection = None
    try:
        while (service := iokit.IOIteratorNext(iterator.value)) != 0:
            name = ctypes.create_string_buffer(128)  # io_name_t
            iokit.IORegistryEntryGetName(service, name)
            if connection is None and name.value == b"AppleSMCKeysEndpoint":
                handle = ctypes.c_uint32(0)
                if iokit.IOServiceOpen(service, task(), 0, ctypes.byref(handle)) == 0:
                    connection = IOKitSmc(handle.value)
            iokit.IOObjectRelease(service)
    finally:
        iokit.IOObjectRelease(iterator.value)
    return connection


def _cf_string(text: str) -> int:
    return _cf().CFStringCreateWithCString(None, text.encode(), CF_STRING_UTF8)


def _py_string(cf_string: int) -> str | None:
    buffer = ctypes.create_string_buffer(256)
    if not _cf().CFStringGetCString(cf_string, buffer, len(buffer), CF_STRING_UTF8):
        return None
    return buffer.value.decode("utf-8", errors="replace")


def _matching_temperature_sensors() -> int:
    cf = _cf()
    keys = (ctypes.c_void_p * 2)(_cf_string("PrimaryUsagePage"), _cf_string("PrimaryUsage"))
    numbers = [ctypes.c_int32(HID_PAGE_APPLE_VENDOR), ctypes.c_int32(HID_USAGE_TEMPERATURE)]
    values = (ctypes.c_void_p * 2)(*[cf.CFNumberCreate(None, CF_NUMBER_SINT32, ctypes.byref(n))
                                     for n in numbers])
    # The callbacks are structs exported by CoreFoundation: pass their addresses
    key_callbacks = ctypes.addressof(ctypes.c_byte.in_dll(cf, "kCFTypeDictionaryKeyCallBacks"))
    value_callbacks = ctypes.addressof(
        ctypes.c_byte.in_dll(cf, "kCFTypeDictionaryValueCallBacks"))
    matching = cf.CFDictionaryCreate(None, keys, values, 2, key_callbacks, value_callbacks)
    for item in (*keys, *values):  # the dictionary retained them
        cf.CFRelease(item)
    return matching


def read_hid_temperatures() -> list[tuple[str, float]]:
    """(product name, Celsius) for every HID temperature service; [] off macOS."""
    if not on_macos():
        return []
    iokit, cf = _iokit(), _cf()
    client = iokit.IOHIDEventSystemClientCreate(None)
    if not client:
        return []
    matching = _matching_temperature_sensors()
    product = _cf_string("Product")
    readings: list[tuple[str, float]] = []
    try:
        iokit.IOHIDEventSystemClientSetMatching(client, matching)
        services = iokit.IOHIDEventSystemClientCopyServices(client)
        if not services:
            return []
        for index in range(cf.CFArrayGetCount(services)):
            service = cf.CFArrayGetValueAtIndex(services, index)
            name_ref = iokit.IOHIDServiceClientCopyProperty(service, product) if service else None
            if not name_ref:
                continue
            name = _py_string(name_ref)
            cf.CFRelease(name_ref)
            event = iokit.IOHIDServiceClientCopyEvent(service, HID_EVENT_TEMPERATURE, 0, 0)
            if not event or name is None:
                continue
            value = iokit.IOHIDEventGetFloatValue(event, HID_EVENT_TEMPERATURE << 16)
            cf.CFRelease(event)
            readings.append((name, float(value)))
        cf.CFRelease(services)
    finally:
        for item in (product, matching, client):
            cf.CFRelease(item)
    return readings
