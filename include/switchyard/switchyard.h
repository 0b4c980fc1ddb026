// Switchyard: the whole public API.
#pragma once

#include "switchyard/align.h"
#include "switchyard/experts.h"
#include "switchyard/models.h"
#include "switchyard/routing.h"
#include "switchyard/runtime.h"
#include "switchyard/status.h"
#include "switchyard/stream.h"
#include "switchyard/tensor.h"
