// The shell: routes to a view, phone-first (one pane at a time), with the
// conversation list beside the open conversation on wide screens.
import { booted, conversations, me } from "../core/state"
import { t } from "../strings"
import { Join, SignIn } from "./Auth"
import { Chat } from "./Chat"
import { ChatList, NewChat } from "./Chats"
import { Banner, NetworkStatus, Toast } from "./common"
import { DevicesView } from "./Devices"
import { AccountAlerts, BindPrompt } from "./Notices"
import { Goodbye, Recover } from "./Recover"
import { parse, route } from "./router"
import { SettingsView } from "./Settings"

function Nav() {
  const unread = Object.values(conversations.value).reduce((n, c) => n + c.unread, 0)
  return (
    <nav class="nav" aria-label="Main">
      <a href="#/" class="nav-item">{t.navChats}{unread > 0 && <span class="badge">{unread}</span>}</a>
      <a href="#/devices" class="nav-item">{t.navDevices}</a>
      <a href="#/settings" class="nav-item">{t.navSettings}</a>
    </nav>
  )
}

export function App() {
  if (!booted.value) return <main class="splash"><p class="muted">{t.loading}</p></main>
  const view = parse(route.value)
  if (view.v === "recover") return <><Banner /><Recover code={view.code} /></>
  if (view.v === "goodbye" && !me.value) return <Goodbye />
  if (view.v === "join" && !me.value) return <><Banner /><Join code={view.code} /></>
  if (!me.value) return <><Banner /><SignIn /></>
  const main =
    view.v === "chat" ? <Chat id={view.id} key={view.id} />
    : view.v === "new" ? <NewChat />
    : view.v === "devices" ? <DevicesView />
    : view.v === "settings" ? <SettingsView />
    : null
  return (
    <div class={"shell" + (main ? " has-main" : "")}>
      <NetworkStatus />
      <Banner />
      <AccountAlerts />
      <BindPrompt />
      <div class="panes">
        <div class="side">
          <ChatList current={view.v === "chat" ? view.id : undefined} />
          <Nav />
        </div>
        {main ?? <section class="pane pane-main pane-empty" aria-hidden="true"><p class="muted">{t.noMessages}</p></section>}
      </div>
      <Toast />
    </div>
  )
}
