from .openim import OpenIM
from .tencent import Tencent

ADAPTERS = {adapter.name: adapter for adapter in (OpenIM(), Tencent())}


def adapter_for(protocol):
    return ADAPTERS[protocol]
